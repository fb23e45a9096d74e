using System.Data;
using System.Data.Common;
using Linq2DbTestKit.Internal;

namespace Linq2DbTestKit;

// How a statement runs on the scope's one connection: refused when it would end the test's transaction, one at a time,
// in a savepoint of its own when statement savepoints are on, and checked afterwards that the test's transaction lives.
public sealed partial class TestScope
{
    internal const string StatementSavepointName = "testkit_statement";

    internal async ValueTask<T> Execute<T>(
        ScopeCommand command,
        CommandBehavior behavior,
        bool async,
        Func<DbCommand, CommandBehavior, bool, CancellationToken, ValueTask<T>> run,
        CancellationToken cancellationToken)
    {
        MarkOwnStatement();
        var connection = command.Handle;
        connection.ThrowIfClosed();

        var sql = command.CommandText ?? string.Empty;
        var control = Provider.ClassifyStatement(sql, Native);
        if (control.EndsTransaction)
            throw Misuse.TransactionStatement(sql, connection.Origin);
        if (TransactionStatements.OutsideTransactionOnly(sql, Provider.Dialect) is { } outsideOnly)
            throw Misuse.OutsideTransactionOnly(sql, connection.Origin, outsideOnly, Provider.DisplayName);
        if (System.Transactions.Transaction.Current is not null)
            throw Misuse.TransactionScope();
        if (Provider.MayTakeSessionLock(sql))
            (_parent ?? this)._endsSession = true;
        if (!connection.TracedByLinqToDB)
            TraceLog.Add(connection.Origin, sql, ScopeTrace.Parameters(command.Inner));

        await Enter(connection, sql, async, cancellationToken).ConfigureAwait(false);
        try
        {
            if (control.Savepoint is { } savepoint)
                return await RunApplicationSavepointStatement(command, connection, savepoint, control, behavior, async, run, cancellationToken).ConfigureAwait(false);

            await PrepareStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            var result = await RunInTestTransaction(command, connection, behavior, async, run, cancellationToken).ConfigureAwait(false);
            // A count of -1 says nothing (SQL Server's SET NOCOUNT ON, most stored procedures): the SQL says whether it writes.
            if (_ledger.Open.Count > 0 && (result is int affected and >= 0 ? affected > 0 : SqlScanner.Writes(sql, Provider.Dialect)))
                _ledger.Wrote(connection, sql);
            if (TransactionStatements.TakesEffectOnCommit(sql, Provider.Dialect) is { } onCommit)
            {
                if (connection.Transaction is { } own)
                    own.OnCommit.Add((_ledger.Next(), onCommit, sql));
                else
                    Diverged(Misuse.TakesEffectOnCommit(connection.Origin, onCommit, sql, committedTransaction: null));
            }
            if (result is DbDataReader driverReader)
            {
                var reader = new ScopeDataReader(driverReader, connection, behavior);
                _openReader = (reader, connection);
                return (T)(object)reader;
            }

            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Runs the application's command in the test's transaction; a failure is recorded for what it did to the
    /// transaction, and afterwards the transaction must still be open.
    /// </summary>
    async ValueTask<T> RunInTestTransaction<T>(
        ScopeCommand command, TestScopeConnection connection, CommandBehavior behavior, bool async,
        Func<DbCommand, CommandBehavior, bool, CancellationToken, ValueTask<T>> run, CancellationToken cancellationToken)
    {
        var sql = command.CommandText ?? string.Empty;
        command.Inner.Transaction = Outer;
        T result;
        try
        {
            result = await run(command.Inner, behavior, async, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not TestScopeException)
        {
            var replacement = await OnStatementFailed(sql, connection, exception, async).ConfigureAwait(false);
            if (replacement is not null)
                throw replacement;
            throw;
        }

        EnsureTransactionLives($"{connection.Origin} ran {Misuse.Shorten(sql)}", afterStatement: true);
        return result;
    }

    /// <summary>
    /// A <c>SAVEPOINT</c>, <c>RELEASE</c> or <c>ROLLBACK TO</c> the application sends as SQL inside its own transaction:
    /// legitimate in production, so it runs, and the kit tracks it as it tracks the driver's savepoint API.
    /// </summary>
    async ValueTask<T> RunApplicationSavepointStatement<T>(
        ScopeCommand command, TestScopeConnection connection, SavepointCommand savepoint, StatementControl control, CommandBehavior behavior, bool async,
        Func<DbCommand, CommandBehavior, bool, CancellationToken, ValueTask<T>> run, CancellationToken cancellationToken)
    {
        var sql = command.CommandText ?? string.Empty;
        if (control.Statements > 1)
            throw Misuse.SavepointAmongOtherStatements(sql, connection.Origin);
        if (connection.Transaction is not { } transaction)
            throw Misuse.SavepointOutsideTransaction(sql, connection.Origin, Provider.DisplayName);
        if (savepoint.Name.StartsWith("testkit_", StringComparison.OrdinalIgnoreCase))
            throw Misuse.KitSavepointNamed(sql, connection.Origin, savepoint.Name);
        Provider.CheckSavepointName(savepoint.Name);

        await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
        var result = await RunInTestTransaction(command, connection, behavior, async, run, cancellationToken).ConfigureAwait(false);
        TrackApplicationSavepoint(transaction, savepoint.Action, savepoint.Name);
        TraceLog.Add($"{connection.Origin}: {Misuse.Shorten(sql)}, the application's own savepoint inside {transaction.Name}");
        return result;
    }

    void TrackApplicationSavepoint(SavepointTransaction transaction, SavepointAction action, string name)
    {
        switch (action)
        {
            case SavepointAction.Save:
                transaction.Savepoints[name] = _ledger.Next();
                break;
            case SavepointAction.Rollback:
                _ledger.RolledBackToApplicationSavepoint(transaction, name);
                break;
            case SavepointAction.Release:
                transaction.Savepoints.Remove(name);
                break;
        }
    }

    /// <summary>
    /// Takes the scope's connection for one operation. Fails at once, naming both, when another connection of the scope
    /// still reads a result on it: in production they would be two connections, and one would not wait for the other.
    /// </summary>
    async ValueTask Enter(TestScopeConnection connection, string what, bool async, CancellationToken cancellationToken)
    {
        ThrowIfUnusable();

        if (async)
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        else
            _gate.Wait(cancellationToken);

        try
        {
            if (Volatile.Read(ref _state) != Active)
                throw Misuse.StatementAfterEnd(this, connection, what);
            ThrowIfUnusable();

            // Under the gate: another connection's rollback may have discarded this one's transaction while it waited.
            connection.ThrowIfDiverged(this);

            if (_openReader is { } open)
            {
                if (!await open.Reader.HoldsSession(async).ConfigureAwait(false))
                {
                    _openReader = null;
                }
                else if (open.Owner != connection)
                {
                    // In production they would be two connections: the rest of the open result is read into memory, and
                    // both go on, in any interleaving, unless memory cannot give what the driver would.
                    if (open.Reader.CannotBuffer is { } reason)
                        throw Misuse.ReaderStillOpen(connection, open.Owner, what, reason);
                    var rows = await open.Reader.BufferRest(async).ConfigureAwait(false);
                    _openReader = null;
                    TraceLog.Add($"{connection.Origin} needs the session while {open.Owner.Origin} reads a result: the rest of it ({rows} row{(rows == 1 ? "" : "s")}) read into memory");
                }
            }

            EnsureTransactionLives($"before {connection.Origin} ran {Misuse.Shorten(what)}", afterStatement: false);
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    void ThrowIfUnusable()
    {
        ThrowIfEnded();
        if (_fatal is { } fatal)
            throw new TestScopeException(fatal.Message);
    }

    /// <summary>
    /// The defence behind the statement checks: when the test's transaction is no longer open, something committed or
    /// rolled it back, and whatever runs after it would commit for real. Nothing runs in this scope any more.
    /// </summary>
    void EnsureTransactionLives(string when, bool afterStatement)
    {
        if (Provider.IsOpen(Outer))
            return;

        var message = afterStatement
            ? $"{when}, and after it the test's transaction was no longer open: the statement committed or rolled back the test's transaction " +
              "(or the server ended it). What the test wrote before it may be committed, and nothing more can run in this test. " +
              "Use BeginTransaction, Commit and Rollback of the connection instead of transaction statements; the kit turns them into savepoints."
            : $"The test's transaction was no longer open {when}: an earlier statement committed or rolled it back, or the server ended it " +
              "(for example a deadlock or XACT_ABORT on SQL Server, with the error raised while a result was read). What the test wrote may be committed, and nothing more can run in this test.";
        _fatal ??= new Fatal(FatalKind.Ended, message);
        TraceLog.Add("↑ the test's transaction is no longer open: nothing more can run in this test");
        throw new TestScopeException(_fatal.Message);
    }

    /// <summary>Records what a failed statement did to the test's transaction; returns a clearer exception to throw instead, if any.</summary>
    async ValueTask<Exception?> OnStatementFailed(string sql, TestScopeConnection? connection, Exception exception, bool async)
    {
        var origin = connection?.Origin ?? "the kit";
        if (connection is not { TracedByLinqToDB: true })
            TraceLog.Add($"{origin}: failed: {exception.GetType().Name}: {exception.Message}");

        switch (Provider.ClassifyStatementFailure(exception, Native))
        {
            case StatementFailure.ConnectionLost:
                return Lost($"while {origin} ran {Misuse.Shorten(sql)}", exception);

            case StatementFailure.TransactionAlreadyAborted:
                return new TestScopeException(AbortedMessage(sql, origin), exception);

            case StatementFailure.AbortsTransaction when Provider.FailedStatementAbortsTransaction:
                await Aborted(sql, origin, exception.Message, async).ConfigureAwait(false);
                break;

            case StatementFailure.MayHaveAborted when Provider.FailedStatementAbortsTransaction:
                // A timeout or a cancellation: the server may have cancelled the statement, which aborts the transaction.
                if (!await TryRunNative(Provider.HealthProbe, async, CancellationToken.None).ConfigureAwait(false))
                    await Aborted(sql, origin, exception.Message, async).ConfigureAwait(false);
                break;
        }

        if (Provider.IsOpen(Outer) && Provider.ScopeTransactionDepth > 0 && _fatal is null)
            await CheckTransactionDepth(sql, origin, exception, async).ConfigureAwait(false);

        if (!Provider.IsOpen(Outer) || _fatal is { Kind: FatalKind.Ended })
        {
            _fatal ??= new Fatal(FatalKind.Ended,
                $"{Provider.DisplayName} ended the test's transaction — committed or rolled it back — when {origin} ran {Misuse.Shorten(sql)} and it failed " +
                $"({exception.Message}): a deadlock victim, a trigger's ROLLBACK, XACT_ABORT ON, or an error that dooms the transaction, or a COMMIT sent " +
                "as dynamic SQL. What the test wrote may have been committed, and nothing more can run in this test. Outside a test the application's own " +
                "transaction would end alone: test the recovery from this error with a real-commit test, or end the test at the error.");
            TraceLog.Add("↑ the server ended the test's transaction: nothing more can run in this test");
        }

        return null;
    }

    /// <summary>
    /// After a failed statement, asks the server how many transactions are open, since a <c>COMMIT</c> or
    /// <c>BEGIN TRANSACTION</c> inside dynamic SQL or a procedure changes the count and fails the statement (SQL Server's
    /// error 266), and some servers end the transaction without telling the driver (Babelfish). A count short of the
    /// scope's is restored, and the test fails at its end; a count of 0 means the test's transaction is gone.
    /// </summary>
    async ValueTask CheckTransactionDepth(string sql, string origin, Exception exception, bool async)
    {
        int depth;
        try
        {
            depth = await QueryNative(Provider.TransactionDepthQuery!, async, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception probe) when (Provider.ClassifyStatementFailure(probe, Native) is not StatementFailure.ConnectionLost)
        {
            depth = 0;
        }

        if (depth == Provider.ScopeTransactionDepth)
            return;
        if (depth == 0)
        {
            _fatal ??= new Fatal(FatalKind.Ended,
                $"{Provider.DisplayName} ended the test's transaction — committed or rolled it back — when {origin} ran {Misuse.Shorten(sql)} and it failed " +
                $"({exception.Message}), and did not tell the driver so: the server counts no open transaction. What the test wrote may have been committed, " +
                "and nothing more can run in this test. Outside a test the application's own transaction would end alone: test the recovery from this error " +
                "with a real-commit test, or end the test at the error.");
            return;
        }

        var divergence = TransactionDepthChanged(depth, $"when {origin} ran {Misuse.Shorten(sql)}");
        await RunNative(depth < Provider.ScopeTransactionDepth
                ? string.Join("; ", Enumerable.Repeat(Provider.DeepenTransaction!, Provider.ScopeTransactionDepth - depth))
                : string.Join("; ", Enumerable.Repeat("COMMIT TRANSACTION", depth - Provider.ScopeTransactionDepth)),
            async, CancellationToken.None).ConfigureAwait(false);
        Diverged(divergence.Message);
        TraceLog.Add($"↑ the server counts {depth} open transactions where the scope keeps {Provider.ScopeTransactionDepth}: restored, and the test fails at its end");
    }

    TestScopeException TransactionDepthChanged(int depth, string when) => new(depth < Provider.ScopeTransactionDepth
        ? $"A COMMIT ran {when} that the kit could not see before it ran (inside EXEC, sp_executesql, a stored procedure or a trigger): " +
          $"{Provider.DisplayName} counted {depth} open transaction(s) where the test's scope keeps {Provider.ScopeTransactionDepth}. In production it would " +
          "have committed the application's transaction, or what the test wrote outside one. The scope kept it from committing, but the test's result " +
          "may not hold outside the test: commit through the connection's transaction (BeginTransaction, Commit), or test this in a real-commit test."
        : $"A transaction began {when} that the kit could not see (BEGIN TRANSACTION inside EXEC, sp_executesql or a stored procedure) and was not " +
          $"ended: {Provider.DisplayName} counted {depth} open transactions where the test's scope keeps {Provider.ScopeTransactionDepth}. In production " +
          "it would have stayed open, holding its locks, until the connection closed. Begin transactions through the connection (BeginTransaction).");

    /// <summary>Runs the kit's own query of one integer on the driver's connection.</summary>
    async ValueTask<int> QueryNative(string sql, bool async, CancellationToken cancellationToken)
    {
        await using var command = NewNativeCommand();
        command.CommandText = sql;
        command.Transaction = Outer;
        var value = async ? await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteScalar();
        return Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    TestScopeException Lost(string when, Exception exception)
    {
        var message = $"The connection of {this} to {Provider.DisplayName} was lost {when} ({exception.Message}). Nothing the test wrote was committed, " +
                      "and nothing more can run in this test. If the server restarted, the next test gets a fresh connection.";
        _fatal ??= new Fatal(FatalKind.Lost, message);
        Database.ClearScopePool();
        TraceLog.Add("↑ the connection to the server is lost; the scope cannot go on");
        return new TestScopeException(message, exception);
    }

    /// <summary>A statement failed and aborted the transaction: it alone is undone when it ran in a statement savepoint.</summary>
    async ValueTask Aborted(string sql, string origin, string error, bool async)
    {
        if (_ledger.StatementSavepoint is not null)
        {
            await RollBackStatement(async).ConfigureAwait(false);
            return;
        }

        var first = _ledger.AbortedBy is null;
        _ledger.Aborted(sql, error, origin);
        if (first)
        {
            TraceLog.Add(_ledger.Open.Count == 0
                ? $"↑ this failure aborted the test's transaction: {Provider.DisplayName} ignores every further statement of the test"
                : $"↑ this failure aborted the transaction: {Provider.DisplayName} ignores every statement until a rollback to savepoint {_ledger.Open[^1].Name} or before");
        }
    }

    string AbortedMessage(string sql, string origin)
    {
        var cause = _ledger.AbortedBy is { } failure
            ? $"an earlier statement failed: {Misuse.Shorten(failure.Sql)} ({failure.Error}), run by {failure.Origin}"
            : "an earlier statement failed after it had returned its result, so the kit did not see which one: its error was raised while its rows " +
              "were read (a later row that fails, for example). The trace shows the statements in order";
        var fix = _ledger.Open.Count == 0
            ? "Nothing more can run in this test. To carry on after an expected error, run the failing statement inside a transaction " +
              "(BeginTransaction; it becomes a savepoint) and roll that transaction back after catching the error, or turn on " +
              $"Scope.StatementSavepoints ({TestKitEnvironment.StatementSavepointsVariable}=true) so that every statement rolls back alone."
            : $"Roll back the transaction that caught the error ({_ledger.Open[^1]}) to carry on.";
        return $"{origin} could not run {Misuse.Shorten(sql)}: {Provider.DisplayName} aborted the test's transaction because {cause}. {fix}";
    }

    /// <summary>
    /// Before a statement: opens its own savepoint when statement savepoints are on (replacing the previous statement's,
    /// in one round trip), or releases the last one when they were turned off.
    /// </summary>
    async ValueTask PrepareStatementSavepoint(bool async, CancellationToken cancellationToken)
    {
        if (!WrapsStatements)
        {
            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (_ledger.StatementSavepoint is not null)
        {
            var release = Provider.SavepointStatement(SavepointAction.Release, StatementSavepointName);
            if (await TryRunNative($"{release}; {Provider.SavepointStatement(SavepointAction.Save, StatementSavepointName)}", async, cancellationToken).ConfigureAwait(false))
            {
                _ledger.StatementSavepointReleased();
                _ledger.StatementSavepointTaken();
                return;
            }

            // The previous statement failed after it returned (while its rows were read, or in a bulk copy): undo it alone.
            await RollBackStatement(async).ConfigureAwait(false);
        }

        await RunSavepointCommand(SavepointAction.Save, StatementSavepointName, null, async, cancellationToken).ConfigureAwait(false);
        _ledger.StatementSavepointTaken();
    }

    /// <summary>Releases the last statement's savepoint, or rolls back to it when that statement failed after it returned.</summary>
    async ValueTask CloseStatementSavepoint(bool async, CancellationToken cancellationToken)
    {
        if (_ledger.StatementSavepoint is null)
            return;

        if (Provider.SavepointStatement(SavepointAction.Release, StatementSavepointName) is { } release && !await TryRunNative(release, async, cancellationToken).ConfigureAwait(false))
        {
            await RollBackStatement(async).ConfigureAwait(false);
            return;
        }

        _ledger.StatementSavepointReleased();
    }

    /// <summary>Rolls back the statement that just failed, alone: the transaction it aborted goes on.</summary>
    async ValueTask RollBackStatement(bool async)
    {
        await RunSavepointCommand(SavepointAction.Rollback, StatementSavepointName, null, async, CancellationToken.None).ConfigureAwait(false);
        if (Provider.CanReleaseSavepoints)
            await RunSavepointCommand(SavepointAction.Release, StatementSavepointName, null, async, CancellationToken.None).ConfigureAwait(false);
        _ledger.StatementRolledBack();
        TraceLog.Add($"↑ statement savepoints: the failed statement was rolled back alone ({Provider.SavepointStatement(SavepointAction.Rollback, StatementSavepointName)})");
    }

    /// <summary>Runs the kit's own statement on the driver's connection; false when the server refuses it because the transaction is aborted.</summary>
    async ValueTask<bool> TryRunNative(string sql, bool async, CancellationToken cancellationToken)
    {
        await using var command = NewNativeCommand();
        command.CommandText = sql;
        command.Transaction = Outer;
        try
        {
            if (async)
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            else
                command.ExecuteNonQuery();
            return true;
        }
        catch (DbException exception) when (Provider.ClassifyStatementFailure(exception, Native) is StatementFailure.TransactionAlreadyAborted)
        {
            return false;
        }
        catch (Exception exception) when (Provider.ClassifyStatementFailure(exception, Native) is StatementFailure.ConnectionLost)
        {
            throw Lost($"while the kit ran {sql}", exception);
        }
    }

    /// <summary>Runs the kit's own statements on the driver's connection, failing as they fail.</summary>
    async ValueTask RunNative(string sql, bool async, CancellationToken cancellationToken)
    {
        await using var command = NewNativeCommand();
        command.CommandText = sql;
        command.Transaction = Outer;
        if (async)
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        else
            command.ExecuteNonQuery();
    }

    /// <summary>
    /// A provider-specific bulk copy takes the scope's connection like a statement: it waits its turn, holds it while the
    /// driver copies, and gets a statement savepoint when they are on. Returns the driver's connection for the copy.
    /// </summary>
    internal DbConnection EnterBulkCopy(TestScopeConnection connection)
    {
        Enter(connection, "a bulk copy", async: false, CancellationToken.None).GetAwaiter().GetResult();
        try
        {
            PrepareStatementSavepoint(async: false, CancellationToken.None).GetAwaiter().GetResult();
            TraceLog.Add($"{connection.Origin}: provider-specific bulk copy on the driver's connection, in the test's transaction");
            return Native;
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    /// <summary>
    /// After the bulk copy: its error, if any, went to the application and not through the kit. With statement
    /// savepoints the next statement finds and undoes a failed copy alone; without, the kit asks the server now whether
    /// the copy aborted the transaction (PostgreSQL), so that the next statement names it.
    /// </summary>
    internal async ValueTask ExitBulkCopy(TestScopeConnection connection, bool async)
    {
        try
        {
            var failed = false;
            if (_fatal is null && Provider.FailedStatementAbortsTransaction && _ledger.StatementSavepoint is null
                && !await TryRunNative(Provider.HealthProbe, async, CancellationToken.None).ConfigureAwait(false))
            {
                failed = true;
                _ledger.Aborted("a provider-specific bulk copy", "the bulk copy failed; its error went to the application", connection.Origin);
                TraceLog.Add("↑ the bulk copy failed and aborted the transaction");
            }

            // Where a failed copy does not abort the transaction (SQL Server), the kit cannot tell it from one that wrote:
            // it counts as a write.
            if (!failed && _ledger.Open.Count > 0)
                _ledger.Wrote(connection, "a provider-specific bulk copy");

            if (_fatal is null && !Provider.IsOpen(Outer))
            {
                _fatal = new Fatal(FatalKind.Ended,
                    $"After {connection.Origin}'s bulk copy, the test's transaction was no longer open: the server committed or rolled it back. " +
                    "What the test wrote may be committed, and nothing more can run in this test.");
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}

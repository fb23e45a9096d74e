using System.Data;
using Linq2DbTestKit.Internal;
using LinqToDB.Data;

namespace Linq2DbTestKit;

// Application transactions as savepoints of the test's transaction, and the end of the scope. Every decision about the
// open transactions is the ledger's, taken under the gate; this part does on the server what the ledger decided.
public sealed partial class TestScope
{
    internal async ValueTask<SavepointTransaction> BeginTransaction(TestScopeConnection connection, IsolationLevel isolationLevel, bool async, CancellationToken cancellationToken)
    {
        MarkOwnStatement();
        connection.ThrowIfClosed();
        if (System.Transactions.Transaction.Current is not null)
            throw Misuse.TransactionScope();

        await Enter(connection, "BEGIN TRANSACTION", async, cancellationToken).ConfigureAwait(false);
        try
        {
            if (connection.Transaction is { } active)
                throw Misuse.SecondTransaction(connection, active);

            // Npgsql sends a savepoint with the next statement, so the server's refusal would come later, blamed on that one.
            if (_ledger.AbortedBy is not null && _ledger.StatementSavepoint is null)
                throw new TestScopeException(AbortedMessage("BEGIN TRANSACTION", connection.Origin));

            // A transaction's savepoint must not nest inside the last statement's.
            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            var name = Provider.SavepointName(_ledger.NextSavepointNumber());
            await RunSavepointCommand(SavepointAction.Save, name, connection, async, cancellationToken).ConfigureAwait(false);

            var transaction = new SavepointTransaction(connection, name, isolationLevel, _ledger.Next());
            _ledger.Began(transaction);
            connection.Transaction = transaction;

            var level = isolationLevel == IsolationLevel.Unspecified || isolationLevel == Outer.IsolationLevel
                ? string.Empty
                : $" (asked for {isolationLevel}; a savepoint runs at the test transaction's {Outer.IsolationLevel})";
            TraceLog.Add($"{connection.Origin}: begin transaction → {Provider.SavepointStatement(SavepointAction.Save, name)}{level}");
            return transaction;
        }
        finally
        {
            _gate.Release();
        }
    }

    internal async ValueTask Commit(SavepointTransaction transaction, bool async, CancellationToken cancellationToken)
    {
        MarkOwnStatement();
        await Enter(transaction.Owner, "COMMIT", async, cancellationToken).ConfigureAwait(false);
        try
        {
            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            switch (_ledger.PlanCommit(transaction))
            {
                case CommitPlan.Refuse:
                    throw Misuse.Completed(transaction);
                case CommitPlan.RefuseNotInnermost:
                    throw Misuse.CommitUnderOpenTransaction(transaction, _ledger.Open[^1]);
                case CommitPlan.RollBackAsAborted:
                    // PostgreSQL's COMMIT of a failed transaction rolls it back without an error; the savepoint behaves the same.
                    await RollBackTo(transaction, async, cancellationToken).ConfigureAwait(false);
                    TraceLog.Add($"{transaction.Owner.Origin}: commit after a failed statement → {Provider.SavepointStatement(SavepointAction.Rollback, transaction.Name)}, as PostgreSQL rolls back a failed transaction on COMMIT");
                    return;
                case CommitPlan.Release:
                    await Release(transaction, async, cancellationToken).ConfigureAwait(false);
                    return;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Ends an application transaction as committed. Its commit would be a real one in production (a connection holds one
    /// transaction at a time), so deferred constraints are checked now, as PostgreSQL's COMMIT checks them: a violation
    /// rolls the transaction back and reaches the application from its commit, as the driver's own error.
    /// </summary>
    async ValueTask Release(SavepointTransaction transaction, bool async, CancellationToken cancellationToken)
    {
        if (Provider.CheckDeferredConstraintsAndRelease(transaction.Name) is { } batch)
        {
            try
            {
                await RunNative(batch, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception exception) when (Provider.ClassifyStatementFailure(exception, Native) is StatementFailure.AbortsTransaction)
            {
                TraceLog.Add($"{transaction.Owner.Origin}: commit → a deferred constraint failed: {exception.Message}; rolled back, as PostgreSQL's COMMIT does");
                await RollBackTo(transaction, async, cancellationToken).ConfigureAwait(false);
                throw;
            }
            catch (Exception exception) when (Provider.ClassifyStatementFailure(exception, Native) is StatementFailure.ConnectionLost)
            {
                throw Lost($"while {transaction.Owner.Origin} committed", exception);
            }
        }

        _ledger.Committed(transaction);
        TraceLog.Add(Provider.SavepointStatement(SavepointAction.Release, transaction.Name) is { } release
            ? $"{transaction.Owner.Origin}: commit → {release}"
            : $"{transaction.Owner.Origin}: commit → nothing to send: {Provider.DisplayName} has no release of savepoint {transaction.Name}");
        if (transaction.OnCommit.Count > 0)
        {
            var (_, what, sql) = transaction.OnCommit[0];
            Diverged(Misuse.TakesEffectOnCommit(transaction.Owner.Origin, what, sql, transaction.Name));
        }
    }

    internal async ValueTask Rollback(SavepointTransaction transaction, bool async, CancellationToken cancellationToken, bool disposing = false)
    {
        MarkOwnStatement();
        switch (transaction.State)
        {
            case SavepointState.Discarded when disposing || !transaction.Owner.HasPendingDivergence:
                return;
            case SavepointState.Committed or SavepointState.RolledBack:
                throw Misuse.Completed(transaction);
        }

        if (Volatile.Read(ref _state) != Active || _fatal is not null)
        {
            // The test's transaction is gone or going: there is nothing left to roll back to.
            transaction.End(SavepointState.Discarded, "the test's scope ended");
            return;
        }

        await Enter(transaction.Owner, "ROLLBACK", async, cancellationToken).ConfigureAwait(false);
        try
        {
            if (!transaction.IsActive)
                return;

            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            await RollBackTo(transaction, async, cancellationToken).ConfigureAwait(false);
            TraceLog.Add($"{transaction.Owner.Origin}: rollback → {Provider.SavepointStatement(SavepointAction.Rollback, transaction.Name)}");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Rolls back to the savepoint of <paramref name="transaction"/>, ending it and every transaction begun after it.</summary>
    async ValueTask RollBackTo(SavepointTransaction transaction, bool async, CancellationToken cancellationToken)
    {
        var effects = _ledger.PlanRollback(transaction);
        await RunSavepointCommand(SavepointAction.Rollback, transaction.Name, transaction.Owner, async, cancellationToken).ConfigureAwait(false);
        if (Provider.CanReleaseSavepoints)
            await RunSavepointCommand(SavepointAction.Release, transaction.Name, transaction.Owner, async, cancellationToken).ConfigureAwait(false);
        _ledger.RolledBack(transaction, effects);

        foreach (var discarded in effects.Discarded)
            TraceLog.Add($"{discarded.Owner.Origin}: transaction {discarded.Name} was rolled back with {transaction.Name}, begun before it on another connection");
        foreach (var write in effects.LostWrites)
        {
            Diverged(write.CommittedIn is { } committed
                ? $"{write.Connection.Origin} committed its transaction {committed} ({Misuse.Shorten(write.Sql)}) while {transaction}, begun before it, " +
                  $"was open; rolling back {transaction.Name} undid that commit too, where production, with two connections, would have kept what " +
                  $"{write.Connection.Origin} committed. Let the later transaction begin after the earlier one ends, use one connection for both, or test " +
                  "this in a real-commit test."
                : $"{write.Connection.Origin} wrote outside any transaction of its own ({Misuse.Shorten(write.Sql)}) while {transaction} was open; " +
                  $"rolling back {transaction.Name} undid that write too, where production, with two connections, would have committed it at once. " +
                  "Write it inside a transaction of its own connection, or test this in a real-commit test.");
        }
    }

    internal async ValueTask ApplicationSavepoint(SavepointTransaction transaction, SavepointAction action, string savepointName, bool async, CancellationToken cancellationToken)
    {
        MarkOwnStatement();
        ArgumentException.ThrowIfNullOrWhiteSpace(savepointName);
        if (savepointName.StartsWith("testkit_", StringComparison.OrdinalIgnoreCase))
            throw Misuse.KitSavepointNamed($"{action} {savepointName}", transaction.Owner.Origin, savepointName);
        Provider.CheckSavepointName(savepointName);
        if (action == SavepointAction.Release && !Provider.CanReleaseSavepoints)
            return;

        await Enter(transaction.Owner, $"{action} {savepointName}", async, cancellationToken).ConfigureAwait(false);
        try
        {
            if (!transaction.IsActive)
                throw Misuse.Completed(transaction);

            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            await RunSavepointCommand(action, savepointName, transaction.Owner, async, cancellationToken).ConfigureAwait(false);
            TrackApplicationSavepoint(transaction, action, savepointName);
            TraceLog.Add($"{transaction.Owner.Origin}: {Provider.SavepointStatement(action, savepointName)}, the application's own savepoint inside {transaction.Name}");
        }
        finally
        {
            _gate.Release();
        }
    }

    async ValueTask RunSavepointCommand(SavepointAction action, string name, TestScopeConnection? connection, bool async, CancellationToken cancellationToken)
    {
        try
        {
            if (Provider.SavepointSentAsStatement(action, name) is { } statement)
            {
                await RunNative(statement, async, cancellationToken).ConfigureAwait(false);
                return;
            }

            switch (action, async)
            {
                case (SavepointAction.Save, true): await Outer.SaveAsync(name, cancellationToken).ConfigureAwait(false); break;
                case (SavepointAction.Save, false): Outer.Save(name); break;
                case (SavepointAction.Rollback, true): await Outer.RollbackAsync(name, cancellationToken).ConfigureAwait(false); break;
                case (SavepointAction.Rollback, false): Outer.Rollback(name); break;
                case (SavepointAction.Release, true): await Outer.ReleaseAsync(name, cancellationToken).ConfigureAwait(false); break;
                case (SavepointAction.Release, false): Outer.Release(name); break;
            }
        }
        catch (Exception exception) when (exception is not TestScopeException)
        {
            var replacement = await OnStatementFailed(Provider.SavepointStatement(action, name) ?? $"{action} {name}", connection, exception, async).ConfigureAwait(false);
            if (replacement is not null)
                throw replacement;
            throw;
        }

        EnsureTransactionLives($"{connection?.Origin ?? "the kit"} ran {Provider.SavepointStatement(action, name) ?? $"{action} {name}"}", afterStatement: true);
    }

    /// <summary>
    /// Begins a scope for one test inside this one: a savepoint of this scope's transaction, on its connection. What the
    /// test does is rolled back to that savepoint when the nested scope ends; what this scope did before (a class's
    /// seed) stays for the next test. This scope must stay idle until the nested one ends.
    /// </summary>
    /// <exception cref="InvalidOperationException">This scope has a transaction or a data reader still open.</exception>
    internal async ValueTask<TestScope> BeginNested(bool async, CancellationToken cancellationToken)
    {
        MarkOwnStatement();
        ThrowIfUnusable();
        var entered = Database.NestedScopeBegins(cancellationToken);
        if (async)
            await entered.ConfigureAwait(false);
        else
            entered.GetAwaiter().GetResult();

        try
        {
            if (async)
                await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            else
                _gate.Wait(cancellationToken);
        }
        catch
        {
            Database.ScopeEnded();
            throw;
        }

        var began = false;
        try
        {
            ThrowIfUnusable();
            if (_ledger.Open.Count > 0)
            {
                var open = _ledger.Open[^1];
                throw new InvalidOperationException(
                    $"{open.Owner.Origin} left its transaction {open.Name} open in the shared seed: commit or roll back every transaction the seed begins, " +
                    "so that each test starts from the seed as committed.");
            }

            if (_openReader is { Reader.IsClosed: false } reading)
                throw new InvalidOperationException($"{reading.Owner.Origin} left a data reader open in the shared seed: read every result to its end, or dispose it.");
            if (_ledger.AbortedBy is not null && _ledger.StatementSavepoint is null)
                throw new TestScopeException(AbortedMessage("the shared seed's end", "the kit"));

            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            await RunSavepointCommand(SavepointAction.Save, TestSavepointName, connection: null, async, cancellationToken).ConfigureAwait(false);
            TraceLog.Add($"a test begins → {Provider.SavepointStatement(SavepointAction.Save, TestSavepointName)}");
            var nested = new TestScope(Database, Native, Outer, parent: this);
            began = true;
            return nested;
        }
        finally
        {
            _gate.Release();
            if (!began)
                Database.ScopeEnded();
        }
    }

    /// <summary>
    /// Lets real-commit sessions begin while this scope waits idle between the tests nested in it (a class's shared
    /// seed): each nested scope holds the database while its test runs instead. A session must not wait for a class
    /// whose next test waits for the session.
    /// </summary>
    internal void IdleBetweenNestedScopes()
    {
        if (Interlocked.Exchange(ref _holdsRunGate, 0) == 1)
            Database.ScopeEnded();
    }

    async ValueTask End(bool async) => await End(async, rollBackInBackground: false).ConfigureAwait(false);

    /// <summary>
    /// Ends the scope as a test framework integration does between two tests: everything that can fail the test is
    /// decided before this returns; only the rollback itself, whose answer decides nothing, may still be on its way to
    /// the server. Its connection goes back to the pool when the server has answered; every later scope, real-commit
    /// session and leak check of the database waits for that (<see cref="TestDatabase.EndingScopesAsync"/>).
    /// </summary>
    internal void EndBetweenTests() => End(async: false, rollBackInBackground: true).GetAwaiter().GetResult();

    async ValueTask End(bool async, bool rollBackInBackground)
    {
        MarkOwnStatement();
        if (Interlocked.CompareExchange(ref _state, Ending, Active) != Active)
            return;

        Exception? failure = null;
        var inBackground = false;
        try
        {
            DataConnection? db;
            lock (_dbLock)
                db = _db;
            if (db is not null)
            {
                if (async)
                    await db.DisposeAsync().ConfigureAwait(false);
                else
                    db.Dispose();
            }

            if (async)
                await _gate.WaitAsync().ConfigureAwait(false);
            else
                _gate.Wait();

            if (_openReader is { Reader.IsClosed: false } reading)
            {
                TraceLog.Add($"{reading.Owner.Origin}: a data reader was still open when the test ended; the kit closed it");
                try
                {
                    if (async)
                        await reading.Reader.DisposeAsync().ConfigureAwait(false);
                    else
                        reading.Reader.Dispose();
                }
                catch (Exception exception) when (exception is not OutOfMemoryException)
                {
                    TraceLog.Add($"closing it failed: {exception.Message}");
                }
            }

            foreach (var open in _ledger.Ended())
                TraceLog.Add($"{open.Owner.Origin}: transaction {open.Name} was still open when the test ended; rolled back with the test's transaction");

            if (rollBackInBackground && _parent is null && _fatal is null && Provider.ScopeTransactionDepth == 0 && Database.ScopeSessions.EndBatch is { } batch && Provider.IsOpen(Outer))
            {
                // Nothing in the answer can fail the test: the driver already knows the transaction is open, and a
                // lost connection is rolled back by the server. Sent now, answered while the framework moves on.
                TraceLog.Add($"end of test → {batch}");
                Task rollback;
                using (ExecutionContext.IsFlowSuppressed() ? default(AsyncFlowControl?) : ExecutionContext.SuppressFlow())
                    rollback = RollBackInBackground(batch);
                Database.EndingInBackground(rollback);
                inBackground = true;
            }
            else
            {
                failure = await RollBackOuter(async).ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref _state, Ended);
            Open.TryRemove(Id, out _);
            if (_parent is not null)
            {
                // The connection and the transaction are the class scope's: what ended them ends it too.
                if (_fatal is { } fatal)
                    _parent._fatal ??= new Fatal(fatal.Kind, $"An earlier test of this class ended the transaction its tests share, so nothing more can run in them: {fatal.Message}");
                _gate.Release();
                if (Interlocked.Exchange(ref _holdsRunGate, 0) == 1)
                    Database.ScopeEnded();
            }
            else if (!inBackground)
            {
                await ReturnConnection(async).ConfigureAwait(false);
            }
        }

        if (failure is not null)
            throw failure;

        var divergences = Divergences;
        if (divergences.Count > 0)
        {
            throw new TestScopeException(
                $"{this} behaved differently from production, so the test's result may not hold outside the test:\n  {string.Join("\n  ", divergences)}");
        }
    }

    /// <summary>Gives the scope's connection back to the pool and lets real-commit sessions begin.</summary>
    async ValueTask ReturnConnection(bool async)
    {
        try
        {
            if (async)
                await Native.DisposeAsync().ConfigureAwait(false);
            else
                Native.Dispose();
        }
        finally
        {
            // A session that lost or ended its transaction may carry state a pooled connection must not pass on
            // (SQL Server's XACT_ABORT, say), one that may hold a session's lock would keep it while idle in the pool,
            // and one whose reset fell to the end batch was not reset unless that batch ran: the pool lets go of its idle
            // connections, this one among them, and the next scope gets a fresh one.
            if (_fatal is not null || _endsSession || (Database.ScopeSessions.EndBatchResetsSession && !_sessionReset))
                Database.ClearScopePool();
            _gate.Release();
            if (Interlocked.Exchange(ref _holdsRunGate, 0) == 1)
                Database.ScopeEnded();
        }
    }

    /// <summary>
    /// The rollback <see cref="EndBetweenTests"/> leaves on its way. When it fails, the connection is closed instead of
    /// pooled, so the server rolls the transaction back, and the failure is written to the error output: the run's leak
    /// check has the last word on what persisted.
    /// </summary>
    async Task RollBackInBackground(string batch)
    {
        try
        {
            await RunNative(batch, async: true, CancellationToken.None).ConfigureAwait(false);
            _sessionReset = true;
        }
        catch (Exception exception)
        {
            _fatal ??= new Fatal(FatalKind.Lost, exception.Message);
            if (Provider.ClassifyStatementFailure(exception, Native) != StatementFailure.ConnectionLost)
            {
                await Console.Error.WriteLineAsync(
                    $"linq2db-testkit: the rollback at the end of {this} failed ({exception.Message}); its connection was closed instead of pooled, " +
                    "so the server rolls the transaction back.").ConfigureAwait(false);
            }
        }
        finally
        {
            try
            {
                await ReturnConnection(async: true).ConfigureAwait(false);
            }
            catch (Exception exception)
            {
                // Never a fault for the next test to meet: the connection is gone either way.
                Database.ClearScopePool();
                await Console.Error.WriteLineAsync($"linq2db-testkit: returning the connection of {this} failed ({exception.Message}); it was closed instead.").ConfigureAwait(false);
            }
        }
    }

    async ValueTask<Exception?> RollBackOuter(bool async)
    {
        switch (_fatal)
        {
            case { Kind: FatalKind.Lost }:
                return null;
            case { Kind: FatalKind.Ended } fatal:
                TraceLog.Add("end of test: the test's transaction had already ended");
                return new TestScopeException(fatal.Message);
        }

        if (!Provider.IsOpen(Outer))
        {
            TraceLog.Add("end of test: the test's transaction had already ended");
            return new TestScopeException(
                $"The transaction of {this} had already ended before the test did: something committed or rolled it back behind the kit's back " +
                "(a statement on the driver's own connection, for example); what the test wrote may be in the database.");
        }

        try
        {
            if (_parent is not null)
            {
                await RollBackToTestSavepoint(async).ConfigureAwait(false);
                return null;
            }

            if (Database.ScopeSessions.EndBatch is { } counted && Provider.ScopeTransactionDepth > 0)
            {
                var depth = await QueryNative(counted, async, CancellationToken.None).ConfigureAwait(false);
                TraceLog.Add($"end of test → {counted}");
                if (depth == 0)
                {
                    return new TestScopeException(
                        $"The transaction of {this} had already ended before the test did, and the driver was not told: {Provider.DisplayName} counted no open " +
                        "transaction at the test's end. Something committed or rolled it back behind the kit's back; what the test wrote may be in the database.");
                }

                if (depth != Provider.ScopeTransactionDepth)
                    return TransactionDepthChanged(depth, "by the end of the test");
            }
            else if (Database.ScopeSessions.EndBatch is { } batch)
            {
                await RunNative(batch, async, CancellationToken.None).ConfigureAwait(false);
                _sessionReset = true;
                TraceLog.Add($"end of test → {batch}");
            }
            else
            {
                if (async)
                    await Outer.RollbackAsync().ConfigureAwait(false);
                else
                    Outer.Rollback();
                TraceLog.Add("end of test → ROLLBACK of the test's transaction");
            }

            return null;
        }
        catch (Exception exception) when (Provider.ClassifyStatementFailure(exception, Native) == StatementFailure.ConnectionLost)
        {
            Database.ClearScopePool();
            _fatal ??= new Fatal(FatalKind.Lost, $"The connection was lost at the end of a test ({exception.Message}); the server rolled the transaction back.");
            TraceLog.Add($"end of test: the connection was lost ({exception.Message}); the server rolled the test's transaction back");
            return null;
        }
    }

    /// <summary>The end of a nested scope: back to the savepoint its test began at, which then goes.</summary>
    async ValueTask RollBackToTestSavepoint(bool async)
    {
        var rollback = Provider.SavepointSentAsStatement(SavepointAction.Rollback, TestSavepointName);
        var release = Provider.CanReleaseSavepoints ? Provider.SavepointSentAsStatement(SavepointAction.Release, TestSavepointName) : null;
        if (rollback is not null && (release is not null || !Provider.CanReleaseSavepoints))
        {
            var batch = release is null ? rollback : $"{rollback}; {release}";
            await RunNative(batch, async, CancellationToken.None).ConfigureAwait(false);
            TraceLog.Add($"end of test → {batch}");
            return;
        }

        await RunSavepointCommand(SavepointAction.Rollback, TestSavepointName, connection: null, async, CancellationToken.None).ConfigureAwait(false);
        if (Provider.CanReleaseSavepoints)
            await RunSavepointCommand(SavepointAction.Release, TestSavepointName, connection: null, async, CancellationToken.None).ConfigureAwait(false);
        TraceLog.Add($"end of test → {Provider.SavepointStatement(SavepointAction.Rollback, TestSavepointName)}");
    }
}

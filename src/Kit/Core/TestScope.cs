using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Diagnostics;
using Linq2DbTestKit.Internal;
using LinqToDB;
using LinqToDB.Data;

namespace Linq2DbTestKit;

/// <summary>
/// One test's hold on the database: one open connection and one outer transaction that is always rolled back when the
/// scope is disposed. Everything built from <see cref="Options"/>, <see cref="Db"/> or <see cref="OpenConnection"/> runs in
/// that transaction; application transactions become savepoints of it, nested to any depth.
/// </summary>
/// <remarks>
/// <para>
/// A scope is for one test. Its connections share one server session, so statements run one at a time; transactions
/// begun on different connections of the scope nest in the order they begin and must end in reverse order.
/// </para>
/// <para>
/// Sequences and identity values are not rolled back by the database: tests must not assert on generated ids.
/// </para>
/// </remarks>
public sealed class TestScope : IDisposable, IAsyncDisposable
{
    const int Active = 0, Ending = 1, Ended = 2;

    static readonly ConcurrentDictionary<string, TestScope> Open = new(StringComparer.Ordinal);
    static readonly AsyncLocal<TestScope?> CurrentScope = new();
    static readonly TimeSpan ReaderWait = TimeSpan.FromSeconds(30);
    const string StatementSavepoint = "testkit_statement";
    const int MaxBypassesKept = 20;

    readonly SemaphoreSlim _gate = new(1, 1);
    readonly List<SavepointTransaction> _savepoints = [];
    readonly Lock _dbLock = new();
    long _savepointNumber;
    long _sequence;
    int _connectionNumber;
    int _state;
    bool _statementSavepointOpen;
    DataConnection? _db;
    FailedStatement? _abortedBy;
    Fatal? _fatal;
    (DbDataReader Reader, ScopeConnection Owner)? _openReader;
    readonly Func<DataOptions, DbConnection> _connectionFactory;
    readonly List<ObservedStatement> _bypasses = [];

    internal TestScope(TestDatabase database, DbConnection native, DbTransaction outer)
    {
        Database = database;
        Native = native;
        Outer = outer;
        Id = Guid.NewGuid().ToString("N");
        TraceLog = new ScopeTrace(database.Password);
        _connectionFactory = _ => NewConnection("DataConnection", tracedByLinqToDB: true);
        Options = Bind(new DataOptions());
        StatementSavepoints = database.StatementSavepoints;
        Open[Id] = this;
    }

    /// <summary>
    /// The scope of the test running in the calling flow: linq2db contexts that code in this flow builds itself — from a
    /// connection string, a configuration name or the default configuration — connect to it when they name its database.
    /// </summary>
    /// <value>
    /// Set for each test by the NUnit integration, and for each request of a test's client by the ASP.NET Core
    /// integration; elsewhere, by <see cref="MakeCurrent"/>. <see langword="null"/> outside a test: at start-up, in hosted
    /// services, in a run's set-up.
    /// </value>
    public static TestScope? Current => CurrentScope.Value;

    /// <summary>The run's database this scope works in.</summary>
    public TestDatabase Database { get; }

    /// <summary>
    /// linq2db options bound to this scope: build the application's own <c>DataConnection</c> subclass from them,
    /// <c>new AppDb(scope.Options)</c>. Every <c>DataConnection</c> built from them gets its own connection handle on the
    /// scope's one connection.
    /// </summary>
    public DataOptions Options { get; }

    /// <summary>
    /// A ready <see cref="DataConnection"/> on this scope, made on first use and disposed with the scope.
    /// </summary>
    public DataConnection Db
    {
        get
        {
            lock (_dbLock)
            {
                ThrowIfEnded();
                return _db ??= new DataConnection(Options);
            }
        }
    }

    /// <summary>
    /// Whether every statement runs in a savepoint of its own, so that on PostgreSQL a failed statement rolls back alone
    /// instead of aborting the test's transaction: set it in a test that expects a database error and goes on after it.
    /// It costs a round trip per statement. SQL Server rolls back a failed statement alone anyway; there it does nothing.
    /// </summary>
    /// <value>By default, <see cref="TestDatabase.StatementSavepoints"/>.</value>
    public bool StatementSavepoints { get; set; }

    bool WrapsStatements => StatementSavepoints && Provider.FailedStatementAbortsTransaction;

    /// <summary>The SQL this scope has run so far: linq2db's trace, the savepoints, raw commands and errors, oldest first.</summary>
    public string Trace => TraceLog.ToString();

    /// <summary>A unique identifier, by which requests of a test's HTTP client find their scope.</summary>
    internal string Id { get; }

    internal DbConnection Native { get; }

    internal DbTransaction Outer { get; }

    internal ScopeTrace TraceLog { get; }

    DatabaseProvider Provider => Database.Provider;

    /// <summary>Options of type <see cref="DataOptions{T}"/> for application contexts whose constructor takes them.</summary>
    /// <typeparam name="TContext">The application's context type.</typeparam>
    public DataOptions<TContext> OptionsFor<TContext>()
        where TContext : IDataContext => new(Options);

    /// <summary>
    /// The application's own <paramref name="options"/> bound to this scope: the same mapping schema, interceptors,
    /// provider options and trace, with the connection replaced by the scope's. This is how the ASP.NET Core integration
    /// turns the application's registered options into the test's.
    /// </summary>
    /// <remarks>The scope uses the linq2db provider it detected for the run's server, whatever provider the options name.</remarks>
    public DataOptions Bind(DataOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfEnded();

        var bound = options.WithOptions<ConnectionOptions>(connection => connection with
        {
            ConfigurationString = null,
            ConnectionString = null,
            ProviderName = null,
            DataProviderFactory = null,
            DbConnection = null,
            DbTransaction = null,
            DataProvider = Database.LinqToDBProvider,
            ConnectionFactory = _connectionFactory,
            DisposeConnection = true,
        });

        if (!IsBound(options))
            bound = bound.UseInterceptor(ScopeInterceptor.Instance);

        // The application's own trace, if it has one, goes on alongside the scope's.
        var trace = options.Find<QueryTraceOptions>();
        var appTrace = trace?.OnTrace is { } onTrace && onTrace != ScopeTrace.OnLinqToDBTrace ? onTrace : null;
        var level = trace?.TraceLevel is { } appLevel && appLevel > TraceLevel.Info ? appLevel : TraceLevel.Info;
        return bound.UseTracing(level, appTrace is null ? ScopeTrace.OnLinqToDBTrace : info =>
        {
            ScopeTrace.OnLinqToDBTrace(info);
            appTrace(info);
        });
    }

    /// <summary>Whether <paramref name="options"/> were bound to a test scope by <see cref="Bind"/>.</summary>
    internal static bool IsBound(DataOptions options) =>
        options.DataContextOptions.Interceptors?.Contains(ScopeInterceptor.Instance) == true;

    /// <summary>
    /// An open ADO.NET connection on this scope, for raw ADO.NET or Dapper-style code. Its transactions are savepoints;
    /// disposing it only lets go of the scope's connection, which stays open until the scope ends.
    /// </summary>
    public DbConnection OpenConnection()
    {
        var connection = NewConnection("connection", tracedByLinqToDB: false);
        connection.Open();
        return connection;
    }

    /// <summary>
    /// What code in this test's flow ran on connections of its own to the test's database instead of the scope's — the
    /// statements of connections made with <see cref="TestDatabase.ConnectionString"/> — one description each, oldest
    /// first. Whatever they wrote is committed and outlives the test. The drivers report them as they run; the server is
    /// not asked.
    /// </summary>
    public IReadOnlyList<string> Bypasses
    {
        get
        {
            lock (_bypasses)
                return [.. _bypasses.Select(DescribeBypass)];
        }
    }

    /// <summary>The statements of <see cref="Bypasses"/>.</summary>
    internal IReadOnlyList<ObservedStatement> BypassStatements
    {
        get
        {
            lock (_bypasses)
                return [.. _bypasses];
        }
    }

    internal void RecordBypass(ObservedStatement statement)
    {
        // After the scope ended, a look from outside is the test's own business: it checks what the scope left.
        if (Volatile.Read(ref _state) != Active)
            return;

        lock (_bypasses)
        {
            if (_bypasses.Count < MaxBypassesKept)
                _bypasses.Add(statement);
        }

        TraceLog.Add($"a connection of the test's own (not the scope's) ran: {Misuse.Shorten(statement.Text)}{(statement.Error is null ? string.Empty : $" — it failed: {statement.Error}")}");
    }

    string DescribeBypass(ObservedStatement statement) =>
        $"{(statement.Error is not null ? "failed" : statement.Writes ? "wrote" : "read")}: {Secrets.Scrub(Misuse.Shorten(statement.Text), Database.Password)}" +
        (statement.Error is null ? string.Empty : $" ({statement.Error})");

    /// <summary>
    /// Makes this scope <see cref="Current"/> in the calling flow until the returned object is disposed, for test
    /// frameworks the kit does not integrate with: <c>using var current = scope.MakeCurrent();</c> at the start of a test.
    /// </summary>
    /// <returns>An object whose disposal makes the previous scope current again.</returns>
    public IDisposable MakeCurrent()
    {
        ThrowIfEnded();
        var previous = CurrentScope.Value;
        CurrentScope.Value = this;
        return new CurrentRestorer(previous);
    }

    /// <summary>Makes <paramref name="scope"/> current in the calling flow, with nothing to restore: for code that ends the flow itself.</summary>
    internal static void SetCurrent(TestScope? scope) => CurrentScope.Value = scope;

    /// <inheritdoc />
    public override string ToString() => $"test scope {Id[..8]} in {Database}";

    /// <summary>Rolls back the test's transaction, whatever the code under test committed, and returns the connection.</summary>
    public void Dispose() => End(async: false).GetAwaiter().GetResult();

    /// <summary>Rolls back the test's transaction, whatever the code under test committed, and returns the connection.</summary>
    public ValueTask DisposeAsync() => End(async: true);

    internal static TestScope? Find(string id) => Open.GetValueOrDefault(id);

    internal void ThrowIfEnded()
    {
        if (Volatile.Read(ref _state) == Ended)
            throw Misuse.ScopeEnded(this);
    }

    ScopeConnection NewConnection(string kind, bool tracedByLinqToDB)
    {
        ThrowIfEnded();
        return new ScopeConnection(this, $"{kind} #{Interlocked.Increment(ref _connectionNumber)}", tracedByLinqToDB);
    }

    /// <summary>A handle for a context the application built itself, in place of the connection linq2db created for it.</summary>
    internal ScopeConnection AdoptConnection()
    {
        ThrowIfEnded();
        return new ScopeConnection(this, $"the application's DataConnection #{Interlocked.Increment(ref _connectionNumber)}", tracedByLinqToDB: false, adoptedFromApplication: true);
    }

    internal async ValueTask<T> Execute<T>(
        ScopeCommand command,
        CommandBehavior behavior,
        bool async,
        Func<DbCommand, CommandBehavior, bool, CancellationToken, ValueTask<T>> run,
        CancellationToken cancellationToken)
    {
        var connection = command.ScopeConnection;
        connection.ThrowIfClosed();

        var sql = command.CommandText ?? string.Empty;
        if (Provider.ControlsTransaction(sql))
            throw Misuse.TransactionStatement(sql, connection.Origin);
        if (System.Transactions.Transaction.Current is not null)
            throw Misuse.TransactionScope();
        if (!connection.TracedByLinqToDB)
            TraceLog.Add(connection.Origin, sql, ScopeTrace.Parameters(command.Inner));

        await Enter(connection, async, cancellationToken).ConfigureAwait(false);
        try
        {
            if (WrapsStatements)
                await OpenStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            command.Inner.Transaction = Outer;
            var result = await run(command.Inner, behavior, async, cancellationToken).ConfigureAwait(false);
            if (result is DbDataReader reader)
                _openReader = (reader, connection);
            return result;
        }
        catch (Exception exception)
        {
            var replacement = OnStatementFailed(sql, connection, exception);
            if (replacement is null && _statementSavepointOpen && _fatal is null)
                await RollBackStatement(async).ConfigureAwait(false);
            if (replacement is null)
                await InspectAfterFailure(sql, connection, exception, async).ConfigureAwait(false);
            if (replacement is null)
                throw;
            throw replacement;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Asks the provider whether the transaction survived a failed statement; records it when it did not.</summary>
    async ValueTask InspectAfterFailure(string sql, ScopeConnection connection, Exception exception, bool async)
    {
        if (_fatal is not null || exception is OperationCanceledException)
            return;

        TransactionHealth health;
        try
        {
            health = await Provider.InspectAfterFailure(Native, Outer, async, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception inspection) when (Provider.ClassifyStatementFailure(inspection) == StatementFailure.ConnectionLost)
        {
            _fatal = new Fatal(FatalKind.Lost, $"The connection of {this} to {Provider.DisplayName} was lost after {connection.Origin} ran {Misuse.Shorten(sql)} ({inspection.Message}). Nothing the test wrote was committed.");
            return;
        }

        var statement = $"{connection.Origin} ran {Misuse.Shorten(sql)} and it failed: {exception.Message}";
        switch (health)
        {
            case TransactionHealth.Doomed:
                _fatal = new Fatal(FatalKind.Doomed,
                    $"{Provider.DisplayName} doomed the test's transaction (XACT_STATE() = -1) when {statement}. A doomed transaction can only be rolled back " +
                    "as a whole, not to a savepoint, so nothing more can run in this test; nothing it wrote was committed. Outside a test the application's " +
                    "own transaction would roll back alone: test the recovery from this error with the statement outside XACT_ABORT and TRY…CATCH, or end the test at the error.");
                TraceLog.Add("↑ this failure doomed the test's transaction (XACT_STATE() = -1): nothing more can run in this test");
                break;
            case TransactionHealth.Ended:
                _fatal = new Fatal(FatalKind.Ended,
                    $"{Provider.DisplayName} rolled back the test's whole transaction when {statement} (a deadlock victim, a trigger's ROLLBACK, or XACT_ABORT ON). " +
                    "Nothing the test wrote remains, and nothing more can run in this test.");
                TraceLog.Add("↑ after this failure the server rolled back the test's whole transaction: nothing more can run in this test");
                break;
        }
    }

    internal async ValueTask<SavepointTransaction> BeginTransaction(ScopeConnection connection, IsolationLevel isolationLevel, bool async, CancellationToken cancellationToken)
    {
        connection.ThrowIfClosed();
        if (connection.Transaction is { } active)
            throw Misuse.SecondTransaction(connection, active);
        if (System.Transactions.Transaction.Current is not null)
            throw Misuse.TransactionScope();

        await Enter(connection, async, cancellationToken).ConfigureAwait(false);
        try
        {
            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            var name = Provider.SavepointName(++_savepointNumber);
            await RunSavepointCommand(SavepointAction.Save, name, connection, async, cancellationToken).ConfigureAwait(false);

            var transaction = new SavepointTransaction(connection, name, isolationLevel, ++_sequence);
            _savepoints.Add(transaction);
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
        if (!transaction.IsActive)
            throw Misuse.Completed(transaction);

        await Enter(transaction.Owner, async, cancellationToken).ConfigureAwait(false);
        try
        {
            var index = _savepoints.IndexOf(transaction);
            if (index != _savepoints.Count - 1)
                throw Misuse.CommitUnderOpenTransaction(transaction, _savepoints[^1]);

            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);

            if (_abortedBy is { } failure && failure.Sequence > transaction.Sequence)
            {
                // PostgreSQL's COMMIT of a failed transaction rolls it back without an error; the savepoint behaves the same.
                await RollbackTo(index, async, cancellationToken).ConfigureAwait(false);
                TraceLog.Add($"{transaction.Owner.Origin}: commit after a failed statement → {Provider.SavepointStatement(SavepointAction.Rollback, transaction.Name)}, as PostgreSQL rolls back a failed transaction on COMMIT");
                return;
            }

            if (Provider.CanReleaseSavepoints)
                await RunSavepointCommand(SavepointAction.Release, transaction.Name, transaction.Owner, async, cancellationToken).ConfigureAwait(false);
            _savepoints.RemoveAt(index);
            transaction.End(SavepointState.Committed);
            TraceLog.Add(Provider.SavepointStatement(SavepointAction.Release, transaction.Name) is { } release
                ? $"{transaction.Owner.Origin}: commit → {release}"
                : $"{transaction.Owner.Origin}: commit → nothing to send: {Provider.DisplayName} has no release of savepoint {transaction.Name}");
        }
        finally
        {
            _gate.Release();
        }
    }

    internal async ValueTask Rollback(SavepointTransaction transaction, bool async, CancellationToken cancellationToken)
    {
        switch (transaction.State)
        {
            case SavepointState.Discarded:
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

        await Enter(transaction.Owner, async, cancellationToken).ConfigureAwait(false);
        try
        {
            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            var index = _savepoints.IndexOf(transaction);
            await RollbackTo(index, async, cancellationToken).ConfigureAwait(false);
            TraceLog.Add($"{transaction.Owner.Origin}: rollback → {Provider.SavepointStatement(SavepointAction.Rollback, transaction.Name)}");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Rolls back to the savepoint at <paramref name="index"/>, ending it and every savepoint begun after it.</summary>
    async ValueTask RollbackTo(int index, bool async, CancellationToken cancellationToken)
    {
        var transaction = _savepoints[index];
        await RunSavepointCommand(SavepointAction.Rollback, transaction.Name, transaction.Owner, async, cancellationToken).ConfigureAwait(false);
        if (Provider.CanReleaseSavepoints)
            await RunSavepointCommand(SavepointAction.Release, transaction.Name, transaction.Owner, async, cancellationToken).ConfigureAwait(false);

        for (var i = _savepoints.Count - 1; i > index; i--)
        {
            _savepoints[i].End(SavepointState.Discarded, $"the {transaction}, begun before it, rolled back");
            TraceLog.Add($"{_savepoints[i].Owner.Origin}: transaction {_savepoints[i].Name} was rolled back with {transaction.Name}, begun before it");
        }

        _savepoints.RemoveRange(index, _savepoints.Count - index);
        transaction.End(SavepointState.RolledBack);
        if (_abortedBy is { } failure && failure.Sequence > transaction.Sequence)
            _abortedBy = null;
    }

    internal async ValueTask ApplicationSavepoint(SavepointTransaction transaction, SavepointAction action, string savepointName, bool async, CancellationToken cancellationToken)
    {
        if (!transaction.IsActive)
            throw Misuse.Completed(transaction);
        if (action == SavepointAction.Release && !Provider.CanReleaseSavepoints)
            return;

        await Enter(transaction.Owner, async, cancellationToken).ConfigureAwait(false);
        try
        {
            await CloseStatementSavepoint(async, cancellationToken).ConfigureAwait(false);
            await RunSavepointCommand(action, savepointName, transaction.Owner, async, cancellationToken).ConfigureAwait(false);
            TraceLog.Add($"{transaction.Owner.Origin}: {Provider.SavepointStatement(action, savepointName)}, the application's own savepoint inside {transaction.Name}");
            switch (action)
            {
                case SavepointAction.Save:
                    transaction.Savepoints[savepointName] = ++_sequence;
                    break;
                case SavepointAction.Rollback when _abortedBy is { } failure && transaction.Savepoints.TryGetValue(savepointName, out var taken) && failure.Sequence > taken:
                    _abortedBy = null;
                    break;
                case SavepointAction.Release:
                    transaction.Savepoints.Remove(savepointName);
                    break;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    async ValueTask RunSavepointCommand(SavepointAction action, string name, ScopeConnection? connection, bool async, CancellationToken cancellationToken)
    {
        try
        {
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
        catch (Exception exception)
        {
            var replacement = OnStatementFailed(Provider.SavepointStatement(action, name) ?? $"{action} {name}", connection, exception);
            if (replacement is null)
                throw;
            throw replacement;
        }
    }

    /// <summary>
    /// The savepoint of the previous statement stays open until the next statement replaces it (one round trip for
    /// both), or until a transaction's savepoint is to be taken, which must not nest inside it.
    /// </summary>
    async ValueTask OpenStatementSavepoint(bool async, CancellationToken cancellationToken)
    {
        if (_statementSavepointOpen)
        {
            var release = Provider.SavepointStatement(SavepointAction.Release, StatementSavepoint);
            if (await TryRunNative($"{release}; {Provider.SavepointStatement(SavepointAction.Save, StatementSavepoint)}", async, cancellationToken).ConfigureAwait(false))
                return;

            // A reader of the previous statement failed after it was returned, and aborted the transaction: roll that statement back.
            await RollBackStatement(async).ConfigureAwait(false);
        }

        await RunSavepointCommand(SavepointAction.Save, StatementSavepoint, null, async, cancellationToken).ConfigureAwait(false);
        _statementSavepointOpen = true;
    }

    async ValueTask CloseStatementSavepoint(bool async, CancellationToken cancellationToken)
    {
        if (!_statementSavepointOpen)
            return;

        if (Provider.SavepointStatement(SavepointAction.Release, StatementSavepoint) is { } release && !await TryRunNative(release, async, cancellationToken).ConfigureAwait(false))
            await RollBackStatement(async).ConfigureAwait(false);
        _statementSavepointOpen = false;
    }

    /// <summary>Rolls back the statement that just failed, alone: the transaction it aborted goes on.</summary>
    async ValueTask RollBackStatement(bool async)
    {
        await RunSavepointCommand(SavepointAction.Rollback, StatementSavepoint, null, async, CancellationToken.None).ConfigureAwait(false);
        if (Provider.CanReleaseSavepoints)
            await RunSavepointCommand(SavepointAction.Release, StatementSavepoint, null, async, CancellationToken.None).ConfigureAwait(false);
        _statementSavepointOpen = false;
        _abortedBy = null;
        TraceLog.Add($"↑ statement savepoints: the failed statement was rolled back alone ({Provider.SavepointStatement(SavepointAction.Rollback, StatementSavepoint)})");
    }

    /// <summary>Runs the kit's own statement on the driver's connection; false when the server refuses it.</summary>
    async ValueTask<bool> TryRunNative(string sql, bool async, CancellationToken cancellationToken)
    {
        await using var command = Native.CreateCommand();
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
        catch (DbException exception) when (Provider.ClassifyStatementFailure(exception) is StatementFailure.TransactionAlreadyAborted)
        {
            return false;
        }
    }

    /// <summary>Takes the scope's connection for one statement; waits while another connection of the scope reads a result.</summary>
    async ValueTask Enter(ScopeConnection connection, bool async, CancellationToken cancellationToken)
    {
        ThrowIfUnusable();

        long started = 0;
        while (true)
        {
            if (async)
                await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            else
                _gate.Wait(cancellationToken);

            if (_openReader is not { } open || open.Reader.IsClosed)
            {
                _openReader = null;
                return;
            }

            // The same connection with a reader still open gets the driver's own error, as it would outside a test.
            if (open.Owner == connection)
                return;

            _gate.Release();
            if (started == 0)
                started = Stopwatch.GetTimestamp();
            else if (Stopwatch.GetElapsedTime(started) > ReaderWait)
                throw Misuse.ReaderStillOpen(connection, open.Owner);

            if (async)
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            else
                Thread.Sleep(1);
        }
    }

    void ThrowIfUnusable()
    {
        ThrowIfEnded();
        if (_fatal is { } fatal)
            throw new TestScopeException(fatal.Message);
    }

    /// <summary>Records what a failed statement did to the test's transaction; returns a clearer exception to throw instead, if any.</summary>
    Exception? OnStatementFailed(string sql, ScopeConnection? connection, Exception exception)
    {
        var origin = connection?.Origin ?? "the kit";
        if (connection is not { TracedByLinqToDB: true })
            TraceLog.Add($"{origin}: failed: {exception.GetType().Name}: {exception.Message}");

        switch (Provider.ClassifyStatementFailure(exception))
        {
            case StatementFailure.AbortsTransaction when Provider.FailedStatementAbortsTransaction:
                if (_abortedBy is null)
                {
                    _abortedBy = new FailedStatement(sql, exception.Message, ++_sequence, origin);
                    TraceLog.Add(_savepoints.Count == 0
                        ? $"↑ this failure aborted the test's transaction: {Provider.DisplayName} ignores every further statement of the test"
                        : $"↑ this failure aborted the transaction: {Provider.DisplayName} ignores every statement until a rollback to savepoint {_savepoints[^1].Name} or before");
                }

                return null;

            case StatementFailure.TransactionAlreadyAborted:
                return new TestScopeException(AbortedMessage(sql, origin), exception);

            case StatementFailure.ConnectionLost:
                var message = $"The connection of {this} to {Provider.DisplayName} was lost while {origin} ran {Misuse.Shorten(sql)} ({exception.Message}). " +
                              "Nothing the test wrote was committed, and nothing more can run in this test. If the server restarted, the next test gets a fresh connection.";
                _fatal = new Fatal(FatalKind.Lost, message);
                Database.OnConnectionLost();
                TraceLog.Add("↑ the connection to the server is lost; the scope cannot go on");
                return new TestScopeException(message, exception);

            default:
                return null;
        }
    }

    string AbortedMessage(string sql, string origin)
    {
        var cause = _abortedBy is { } failure
            ? $"an earlier statement failed: {Misuse.Shorten(failure.Sql)} ({failure.Error}), run by {failure.Origin}"
            : "an earlier statement failed that the kit did not see (one sent on the driver's own connection)";
        var fix = _savepoints.Count == 0
            ? "Nothing more can run in this test. To carry on after an expected error, run the failing statement inside a transaction " +
              "(BeginTransaction; it becomes a savepoint) and roll that transaction back after catching the error, or turn on " +
              $"Scope.StatementSavepoints ({TestKitEnvironment.StatementSavepointsVariable}=true) so that every statement rolls back alone."
            : $"Roll back the transaction that caught the error ({_savepoints[^1]}) to carry on.";
        return $"{origin} could not run {Misuse.Shorten(sql)}: {Provider.DisplayName} aborted the test's transaction because {cause}. {fix}";
    }

    async ValueTask End(bool async)
    {
        if (Interlocked.CompareExchange(ref _state, Ending, Active) != Active)
            return;

        Exception? failure = null;
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

            foreach (var open in _savepoints)
            {
                open.End(SavepointState.Discarded, "the test's scope ended");
                TraceLog.Add($"{open.Owner.Origin}: transaction {open.Name} was still open when the test ended; rolled back with the test's transaction");
            }

            _savepoints.Clear();
            failure = await RollBackOuter(async).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _state, Ended);
            Open.TryRemove(Id, out _);
            if (async)
                await Native.DisposeAsync().ConfigureAwait(false);
            else
                Native.Dispose();

            // A session that lost, doomed or ended its transaction may carry state a pooled connection must not pass on
            // (SQL Server's XACT_ABORT, say): the next scope gets a fresh connection.
            if (_fatal is not null)
                Database.OnConnectionLost();
            _gate.Release();
        }

        if (failure is not null)
            throw failure;
    }

    async ValueTask<Exception?> RollBackOuter(bool async)
    {
        // A lost connection or a transaction the server ended leaves nothing to roll back; a doomed one rolls back whole.
        if (_fatal?.Kind is FatalKind.Lost or FatalKind.Ended)
            return null;

        try
        {
            if (async)
                await Outer.RollbackAsync().ConfigureAwait(false);
            else
                Outer.Rollback();
            TraceLog.Add("end of test → ROLLBACK of the test's transaction");
            return null;
        }
        catch (InvalidOperationException exception)
        {
            // The driver's transaction object says it already completed: a statement ended it behind the kit's back.
            TraceLog.Add($"end of test: the test's transaction had already ended ({exception.Message})");
            return new TestScopeException(
                $"The transaction of {this} had already ended before the test did ({exception.Message}). Something committed or rolled it back " +
                "behind the kit's back, for example a statement on the driver's own connection; what the test wrote after that may be in the database.",
                exception);
        }
        catch (Exception exception) when (Provider.ClassifyStatementFailure(exception) == StatementFailure.ConnectionLost)
        {
            Database.OnConnectionLost();
            TraceLog.Add($"end of test: the connection was lost ({exception.Message}); the server rolled the test's transaction back");
            return null;
        }
    }

    sealed class CurrentRestorer(TestScope? previous) : IDisposable
    {
        int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                CurrentScope.Value = previous;
        }
    }

    enum FatalKind
    {
        Lost,
        Doomed,
        Ended,
    }

    /// <summary>Why nothing more can run in this scope, as the message every later call gets.</summary>
    sealed record Fatal(FatalKind Kind, string Message);

    /// <summary>A statement that aborted the transaction; <paramref name="Sequence"/> orders it among the savepoints, so that a rollback to a savepoint taken before it revives the transaction.</summary>
    sealed record FailedStatement(string Sql, string Error, long Sequence, string Origin);
}

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
public sealed partial class TestScope : IDisposable, IAsyncDisposable
{
    const int Active = 0, Ending = 1, Ended = 2;
    const int MaxBypassesKept = 20;

    static readonly ConcurrentDictionary<string, TestScope> Open = new(StringComparer.Ordinal);
    static long _lastId;
    static readonly AsyncLocal<TestScope?> CurrentScope = new();
    static readonly AsyncLocal<bool> OwnStatement = new();

    /// <summary>Held by whatever uses the scope's one connection: a statement, a savepoint operation, a bulk copy, the end.</summary>
    readonly SemaphoreSlim _gate = new(1, 1);
    readonly TransactionLedger _ledger = new();
    readonly Lock _dbLock = new();
    readonly List<ObservedStatement> _bypasses = [];
    volatile bool _contextWithItsOwnConnection;
    readonly List<string> _divergences = [];
    readonly Func<DataOptions, DbConnection> _connectionFactory;
    int _connectionNumber;
    int _state;
    ScopeDataConnection? _db;
    Fatal? _fatal;

    /// <summary>
    /// Set when a statement may have taken a lock the session keeps beyond the rollback, or the driver may keep state of
    /// the session the end batch's reset would pull from under it: the end closes the connection instead of pooling it.
    /// </summary>
    volatile bool _endsSession;

    /// <summary>Set once the end batch ran, which resets the session where <see cref="ScopeSessions.EndBatchResetsSession"/>.</summary>
    bool _sessionReset;
    (ScopeDataReader Reader, TestScopeConnection Owner)? _openReader;

    /// <summary>The savepoint a nested scope's test began at, in its class scope's transaction.</summary>
    const string TestSavepointName = "testkit_test";

    /// <summary>For a scope nested in a class scope: that scope, whose connection and transaction it shares.</summary>
    readonly TestScope? _parent;

    /// <summary>1 while this scope keeps real-commit sessions waiting: from its start to its end, unless it is idle between nested scopes.</summary>
    int _holdsRunGate = 1;

    internal TestScope(TestDatabase database, DbConnection native, DbTransaction outer, TestScope? parent = null)
    {
        _parent = parent;
        Database = database;
        Native = native;
        _commandFactory = DbProviderFactories.GetFactory(native);
        Outer = outer;
        // A count, not a GUID: unique in the process, where the scopes live, and a GUID costs a system call (7–13 µs here).
        Id = Interlocked.Increment(ref _lastId).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
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
    /// A ready <see cref="DataConnection"/> on this scope, made on first use and disposed with the scope; made again when
    /// the test disposed it (<c>using var db = Scope.Db;</c>).
    /// </summary>
    public DataConnection Db
    {
        get
        {
            lock (_dbLock)
            {
                ThrowIfEnded();
                if (_db is null or { IsDisposed: true })
                {
                    _db = new ScopeDataConnection(Options.WithOptions<ConnectionOptions>(connection => connection with
                    {
                        ConnectionFactory = _ => NewConnection("Scope.Db", tracedByLinqToDB: true, testsOwn: true),
                    }));
                }
                return _db;
            }
        }
    }

    /// <summary>
    /// Whether every statement runs in a savepoint of its own, so that on PostgreSQL a failed statement rolls back alone
    /// instead of aborting the test's transaction: set it in a test that expects a database error and goes on after it.
    /// It costs a round trip per statement. SQL Server rolls back a failed statement alone anyway; there it does nothing.
    /// </summary>
    /// <value>By default, <see cref="TestDatabase.StatementSavepoints"/>.</value>
    /// <remarks>Turning it off releases the last statement's savepoint before the next statement runs.</remarks>
    public bool StatementSavepoints { get; set; }

    bool WrapsStatements => StatementSavepoints && Provider.FailedStatementAbortsTransaction;

    /// <summary>The SQL this scope has run so far: linq2db's trace, the savepoints, raw commands and errors, oldest first.</summary>
    public string Trace => TraceLog.ToString();

    /// <summary>A unique identifier, by which requests of a test's HTTP client find their scope.</summary>
    internal string Id { get; }

    internal DbConnection Native { get; }

    /// <summary>Creates a command on the driver's connection, from any thread.</summary>
    /// <remarks>
    /// Not <c>Native.CreateCommand()</c>: Npgsql hands out a command the connection keeps for reuse, unsafely when two
    /// threads ask at once, and the scope's connections do, as the application's connections would in production.
    /// A command made by the driver's factory is never kept for reuse.
    /// </remarks>
    internal DbCommand NewNativeCommand()
    {
        var command = _commandFactory?.CreateCommand();
        if (command is null)
        {
            lock (_commandFactoryLock)
                return Native.CreateCommand();
        }

        command.Connection = Native;
        return command;
    }

    readonly DbProviderFactory? _commandFactory;
    readonly Lock _commandFactoryLock = new();

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
            DataProvider = Database.LinqToDBProviderOn(Native),
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
    /// statements of connections made with <see cref="TestDatabase.ConnectionString"/> — and what it wrote to other
    /// databases, one description each, oldest first. Whatever they wrote is committed and outlives the test. The drivers report them as they run; the server is
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

    /// <summary>
    /// Whether a linq2db context in this test's flow opened a connection the application made itself
    /// (<c>UseConnectionFactory</c>, <c>UseConnection</c>) to the test's database: the kit cannot reach such a connection.
    /// </summary>
    internal bool SawContextWithItsOwnConnection => _contextWithItsOwnConnection;

    internal void NoteContextWithItsOwnConnection()
    {
        if (Volatile.Read(ref _state) == Active)
            _contextWithItsOwnConnection = true;
    }

    string DescribeBypass(ObservedStatement statement) =>
        $"{(statement.Error is not null ? "failed" : statement.Writes ? "wrote" : "read")}" +
        $"{(string.Equals(statement.Database, Database.Name, StringComparison.Ordinal) ? string.Empty : $" in database '{statement.Database}'")}: " +
        $"{Secrets.Scrub(Misuse.Shorten(statement.Text), Database.Password)}" +
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

    /// <summary>
    /// Whether the calling flow is inside one of the kit's own operations on a scope's connection: the drivers'
    /// diagnostics of those statements need not be watched for bypasses, which keeps the watch free for the common case.
    /// </summary>
    internal static bool RunsOwnStatement => OwnStatement.Value;

    /// <summary>Marks the rest of the calling async method, and what it calls, as the kit's own operation.</summary>
    static void MarkOwnStatement() => OwnStatement.Value = true;

    /// <summary>Makes <paramref name="scope"/> current in the calling flow, with nothing to restore: for code that ends the flow itself.</summary>
    internal static void SetCurrent(TestScope? scope) => CurrentScope.Value = scope;

    /// <inheritdoc />
    public override string ToString() => $"test scope {Id[..8]} in {Database}";

    /// <summary>
    /// Where this test's scope behaved differently from production, as far as the kit could tell: one description each,
    /// oldest first. Disposing the scope fails with them, since the test's result may not hold outside the test.
    /// </summary>
    public IReadOnlyList<string> Divergences
    {
        get
        {
            lock (_divergences)
                return [.. _divergences];
        }
    }

    /// <summary>
    /// The driver's own connection behind <paramref name="connection"/>, a connection of a test scope (what a
    /// <c>DataConnection</c> built in a test holds, or what <see cref="OpenConnection"/> returned), for driver-specific
    /// features the kit does not offer: casting the scope's connection to <c>NpgsqlConnection</c> or <c>SqlConnection</c> fails.
    /// </summary>
    /// <remarks>
    /// What runs on it runs in the test's transaction but outside the kit's bookkeeping: no statement savepoints, no
    /// trace, no turn-taking with the scope's other connections. Never commit or roll back through it. On PostgreSQL the
    /// scope closes its connection at its end instead of pooling it, since the end's reset of the session would pull what
    /// the driver prepared on it from under the driver.
    /// </remarks>
    /// <returns>The driver's connection; <paramref name="connection"/> itself when it is not a test scope's.</returns>
    public static DbConnection GetDriverConnection(DbConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection is not TestScopeConnection handle)
            return connection;

        // What the test does on the driver's own connection is beyond the kit's sight (a statement the driver prepares, say).
        handle.Scope.KeepsDriverState();
        return handle.Scope.Native;
    }

    /// <summary>
    /// The driver may keep state of the session that the end batch's reset would pull from under it (Npgsql's prepared
    /// statements, which <c>DISCARD ALL</c> deallocates): the scope's connection is closed at its end instead of pooled.
    /// </summary>
    internal void KeepsDriverState()
    {
        if (Database.ScopeSessions.EndBatchResetsSession)
            (_parent ?? this)._endsSession = true;
    }

    /// <summary>Rolls back the test's transaction, whatever the code under test committed, and returns the connection.</summary>
    /// <exception cref="TestScopeException">
    /// The test's transaction had ended before the scope did (something committed it), or the scope diverged from
    /// production (<see cref="Divergences"/>).
    /// </exception>
    public void Dispose() => End(async: false).GetAwaiter().GetResult();

    /// <inheritdoc cref="Dispose"/>
    public ValueTask DisposeAsync() => End(async: true);

    internal static TestScope? Find(string id) => Open.GetValueOrDefault(id);

    internal void ThrowIfEnded()
    {
        if (Volatile.Read(ref _state) == Ended)
            throw Misuse.ScopeEnded(this);
    }

    TestScopeConnection NewConnection(string kind, bool tracedByLinqToDB, bool testsOwn = false)
    {
        ThrowIfEnded();
        return new TestScopeConnection(this, $"{kind} #{Interlocked.Increment(ref _connectionNumber)}", tracedByLinqToDB, testsOwn: testsOwn);
    }

    /// <summary>A handle for a context the application built itself, in place of the connection linq2db created for it.</summary>
    internal TestScopeConnection AdoptConnection()
    {
        ThrowIfEnded();
        return new TestScopeConnection(this, $"the application's DataConnection #{Interlocked.Increment(ref _connectionNumber)}", tracedByLinqToDB: false, adoptedFromApplication: true);
    }

    void Diverged(string description)
    {
        RecordDivergence(description);
        TraceLog.Add($"↑ unlike production: {description}");
    }

    internal void RecordDivergence(string description)
    {
        lock (_divergences)
            _divergences.Add(description);
    }

    /// <summary>The scope's own <see cref="Db"/>, which says whether the test disposed it.</summary>
    sealed class ScopeDataConnection(DataOptions options) : DataConnection(options)
    {
        public bool IsDisposed => Disposed;
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
        /// <summary>The connection to the server is gone; the server rolled the transaction back.</summary>
        Lost,

        /// <summary>The test's transaction ended (committed or rolled back) behind the kit's back, or the server ended it.</summary>
        Ended,
    }

    /// <summary>Why nothing more can run in this scope, as the message every later call gets.</summary>
    sealed record Fatal(FatalKind Kind, string Message);
}

using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using Linq2DbTestKit.Internal;
using LinqToDB.DataProvider;

namespace Linq2DbTestKit;

/// <summary>
/// The database of one test run. <see cref="CreateAsync"/> creates it on the configured server under a unique name,
/// so that parallel runs on one server never meet; disposing it drops it. Tests take their <see cref="TestScope"/>s from it.
/// </summary>
/// <remarks>
/// The kit stamps the database it creates with a mark unique to the run and drops a database only when it carries that
/// mark: it never drops a database it did not create in this run. It writes into a database it did not create only
/// when <see cref="TestDatabaseOptions.AllowExistingDatabase"/> says so, and never drops that one.
/// </remarks>
public sealed class TestDatabase : IAsyncDisposable
{
    const string NamePrefix = "testkit";

    /// <summary>The application name of the kit's own connections, by which the server's session list tells them apart.</summary>
    internal const string ApplicationName = "linq2db-testkit";

    /// <summary>The application name of the leak check's connections.</summary>
    internal const string LeakCheckApplicationName = "linq2db-testkit-leak-check";

    /// <summary>
    /// The application name of <see cref="ConnectionString"/>: a session that carries it while a test runs has bypassed
    /// the test's scope, and <see cref="TestScope.Bypasses"/> reports it.
    /// </summary>
    public const string UnscopedApplicationName = "linq2db-testkit-unscoped";

    readonly string _adminConnectionString;
    readonly string _describedSource;
    readonly ParsedConnectionString _server;
    readonly string? _marker;
    readonly LeakCheck? _leakCheck;
    readonly ThrowawayServer? _throwaway;
    readonly RunGate _gate = new();
    ChangeTracker? _changeTracker;
    IAsyncDisposable? _templateLock;
    IAsyncDisposable? _runHold;
    TemplateBuild? _templateToSave;
    Task? _spare;
    readonly System.Collections.Concurrent.ConcurrentQueue<string> _notes = new();
    /// <summary>Counts real-commit sessions' beginnings and ends: odd while one runs.</summary>
    int _sessionMoves;
    int _disposed;

    /// <summary>The databases of this process whose leak check is on and not yet disposed: an application's start-up is compared with each.</summary>
    static readonly List<TestDatabase> Checked = [];

    TestDatabase(
        DatabaseProvider provider,
        string name,
        string adminConnectionString,
        string givenConnectionString,
        ParsedConnectionString server,
        string describedSource,
        string? marker,
        TestDatabaseOptions options,
        IDataProvider? linqToDBProvider,
        ThrowawayServer? throwaway)
    {
        _throwaway = throwaway;
        Provider = provider;
        Name = name;
        _adminConnectionString = adminConnectionString;
        _server = server;
        _describedSource = describedSource;
        _marker = marker;
        KeepsDatabase = options.KeepDatabase || marker is null;
        StatementSavepoints = options.StatementSavepoints;
        _linqToDBProvider = linqToDBProvider;
        InterceptsConnections = options.InterceptConnections;
        if (InterceptsConnections)
            ConnectionInterception.EnsureInstalled();
        ConnectionInterception.EnsureActivitiesRegistered();
        BypassWatch.EnsureWatching(provider);
        ServerConnectionString = givenConnectionString;
        ConnectionString = provider.LimitLockWaits(provider.ForDatabase(givenConnectionString, name, UnscopedApplicationName, kitConnection: false));
        _kitConnectionString = provider.ForDatabase(givenConnectionString, name, ApplicationName);
        ScopeSessions = provider.ForScopes(_kitConnectionString);
        ChecksForLeaks = options.CheckForLeaks;
        if (ChecksForLeaks)
        {
            _leakCheck = new LeakCheck(this, provider.ForKitQueries(provider.ForDatabase(givenConnectionString, name, LeakCheckApplicationName)), adminConnectionString);
            lock (Checked)
                Checked.Add(this);
        }
    }

    /// <summary>The provider of the database.</summary>
    public DatabaseProvider Provider { get; }

    /// <summary>The database's name on the server.</summary>
    public string Name { get; }

    /// <summary>
    /// A connection string to this database, for applying the schema (migrations) and for configuring the application
    /// under test. It contains the password: the kit never writes it to a message or log, and neither should a test.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Its application name is <see cref="UnscopedApplicationName"/>: code that connects with it during a test, instead of
    /// using the test's scope, is reported by <see cref="TestScope.Bypasses"/>.
    /// </para>
    /// <para>
    /// On PostgreSQL it limits lock waits to <see cref="LockWaitLimit"/> (<c>lock_timeout</c>): code that bypasses a test's
    /// scope and touches a row the scope holds fails after that long instead of waiting for the test, which waits for it.
    /// </para>
    /// </remarks>
    public string ConnectionString { get; }

    /// <summary>How long a connection made with <see cref="ConnectionString"/> waits for a lock before its statement fails (PostgreSQL).</summary>
    public static readonly TimeSpan LockWaitLimit = TimeSpan.FromSeconds(5);

    /// <summary>Whether the kit created this database for the run (and will drop it unless told to keep it).</summary>
    public bool CreatedByKit => _marker is not null;

    /// <summary>Whether the database stays when the run ends: kept on request, or not the kit's to drop.</summary>
    public bool KeepsDatabase { get; }

    /// <summary>
    /// Whether linq2db contexts that code in a test builds itself (from a connection string or a configuration name) join
    /// the test's scope: <see cref="TestDatabaseOptions.InterceptConnections"/>.
    /// </summary>
    public bool InterceptsConnections { get; }

    /// <summary>Whether <see cref="FindLeaksAsync"/> compares the database with its prepared state: <see cref="TestDatabaseOptions.CheckForLeaks"/>.</summary>
    public bool ChecksForLeaks { get; }

    /// <summary>The default of <see cref="TestScope.StatementSavepoints"/> for the scopes of this database.</summary>
    public bool StatementSavepoints { get; }

    /// <summary>How this database's scopes connect and end (<see cref="DatabaseProvider.ForScopes"/>).</summary>
    internal ScopeSessions ScopeSessions { get; }

    internal string ScopeConnectionString => ScopeSessions.ConnectionString;

    /// <summary>For the kit's own connections to the database (real-commit sessions' bookkeeping): pooled apart from the scopes', and reset by the driver.</summary>
    readonly string _kitConnectionString;

    /// <summary>The server's connection string the run was given, or the throwaway server's: for the kit's own checks of the server.</summary>
    internal string ServerConnectionString { get; }

    internal string? Password => _server.Password;

    readonly Lock _linqToDBProviderLock = new();
    IDataProvider? _linqToDBProvider;

    /// <summary>The linq2db provider for the run's server, detected when first needed: its first use costs the time linq2db takes to set itself up.</summary>
    internal IDataProvider LinqToDBProvider => LinqToDBProviderOn(openConnection: null);

    /// <summary>
    /// <see cref="LinqToDBProvider"/>, detected on <paramref name="openConnection"/> (an open connection to the run's
    /// database) when this is its first use. The first scope passes its own: a connection opened for the detection while
    /// the scope's is open would stay in the scopes' pool beside it, and every later scope would take the two in turn
    /// (the pool hands out the connection idle longest) instead of reusing the one the last test warmed.
    /// </summary>
    internal IDataProvider LinqToDBProviderOn(DbConnection? openConnection)
    {
        if (Volatile.Read(ref _linqToDBProvider) is { } detected)
            return detected;

        lock (_linqToDBProviderLock)
        {
            return _linqToDBProvider ??= openConnection is null
                ? Detect(Provider, ScopeConnectionString)
                : Provider.DetectLinqToDBProvider(openConnection);
        }
    }

    /// <summary>
    /// Creates the run's database on the server that <paramref name="options"/> name (by default, those of the environment
    /// variables), or attaches to an existing one where the options allow it.
    /// </summary>
    /// <exception cref="TestKitConfigurationException">
    /// The connection string is malformed, the server cannot be reached or refuses the credentials, or the options name a
    /// database the kit did not create without allowing it. The message names the cause, the variable and the fix.
    /// </exception>
    public static async Task<TestDatabase> CreateAsync(DatabaseProvider provider, TestDatabaseOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(provider);
        options ??= TestDatabaseOptions.FromEnvironment(provider);

        var source = options.ConnectionStringSource
            ?? (options.ConnectionString is null ? $"the default connection string, as {provider.ConnectionVariable} is not set" : "the connection string given in code");
        var given = options.ConnectionString ?? provider.DefaultConnectionString;
        var server = provider.Parse(given, source);
        var describedSource = options.ConnectionString is null ? source : $"{source}: {server.Masked}";

        if (options.ExistingDatabase is { } existing)
            return await AttachAsync(provider, options, existing, given, server, describedSource, cancellationToken).ConfigureAwait(false);

        ThrowawayServer? throwaway = null;
        if (options.ConnectionString is null && options.StartServer != ServerStart.Off && !await ThrowawayServer.AnswersAsync(server.Host, server.Port, cancellationToken).ConfigureAwait(false))
        {
            throwaway = await provider.StartServerAsync(options.StartServer, cancellationToken).ConfigureAwait(false);
            given = throwaway.ConnectionString;
            describedSource = $"the {throwaway.Description}, which the kit started as nothing answered at {server.Server} and {provider.ConnectionVariable} is not set";
            server = provider.Parse(given, describedSource);
        }

        try
        {
            return await CreateOnServerAsync(provider, options, given, server, describedSource, throwaway, cancellationToken).ConfigureAwait(false);
        }
        catch when (throwaway is not null)
        {
            await throwaway.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    static async Task<TestDatabase> CreateOnServerAsync(
        DatabaseProvider provider, TestDatabaseOptions options, string given, ParsedConnectionString server, string describedSource, ThrowawayServer? throwaway, CancellationToken cancellationToken)
    {
        var adminConnectionString = provider.ForKitQueries(provider.ForDatabase(given, server.Database, ApplicationName));
        var admin = await ConnectAsync(provider, adminConnectionString, server, describedSource, server.Database, cancellationToken).ConfigureAwait(false);
        var adminGoesToDatabase = false;
        try
        {
            var created = await CreateOnServerAsync(provider, options, given, server, describedSource, throwaway, admin, adminConnectionString, cancellationToken).ConfigureAwait(false);
            adminGoesToDatabase = created._templateLock is not null;
            return created;
        }
        finally
        {
            if (!adminGoesToDatabase)
                await admin.DisposeAsync().ConfigureAwait(false);
        }
    }

    static async Task<TestDatabase> CreateOnServerAsync(
        DatabaseProvider provider, TestDatabaseOptions options, string given, ParsedConnectionString server, string describedSource, ThrowawayServer? throwaway,
        DbConnection admin, string adminConnectionString, CancellationToken cancellationToken)
    {
        var serverDescription = await provider.DescribeServerAsync(admin, cancellationToken).ConfigureAwait(false);
        var runId = string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:yyyyMMdd_HHmmss}_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        var name = provider.DatabaseName(NamePrefix, runId);
        var marker = $"linq2db-testkit run {runId} {Guid.NewGuid():N}";

        // The run says it is alive before its database exists, so that no other run takes that database for a killed
        // run's; then it removes what killed runs left on the server.
        var runHold = await provider.HoldRunAsync(adminConnectionString, name, cancellationToken).ConfigureAwait(false);
        try
        {
            var dropped = await provider.DropDatabasesOfKilledRunsAsync(admin, cancellationToken).ConfigureAwait(false);
            if (dropped.Count > 0)
                options.Progress?.Invoke($"removed the database{(dropped.Count == 1 ? "" : "s")} of killed runs: {string.Join(", ", dropped)}");
            var created = await CreateOnServerAsync(provider, options, given, server, describedSource, throwaway, admin, serverDescription, name, marker, cancellationToken).ConfigureAwait(false);
            created._runHold = runHold;
            return created;
        }
        catch
        {
            if (runHold is not null)
                await runHold.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    static async Task<TestDatabase> CreateOnServerAsync(
        DatabaseProvider provider, TestDatabaseOptions options, string given, ParsedConnectionString server, string describedSource, ThrowawayServer? throwaway,
        DbConnection admin, string? serverDescription, string name, string marker, CancellationToken cancellationToken)
    {
        var adminConnectionString = provider.ForKitQueries(provider.ForDatabase(given, server.Database, ApplicationName));

        IAsyncDisposable? templateLock = null;
        string? template = null;
        string? templateStatus = null;
        var fromTemplate = false;
        if (options is { SchemaTemplate: not null, SchemaFingerprint: { } fingerprint })
        {
            if (provider.TemplatesUnsupported is { } reason)
            {
                templateStatus = $"no schema template: {reason}";
            }
            else if (throwaway is not null)
            {
                templateStatus = "no schema template: the server is a throwaway one the kit started for this run, and the template would go with it, so " +
                                 "building it could not pay off. Templates serve a server that outlives runs";
            }
            else
            {
                // Held on the admin connection's session: released at once after a copy, after SaveTemplateAsync after a build.
                template = TemplateName(options.SchemaTemplate);
                templateLock = await provider.LockTemplateAsync(admin, template, closeConnection: true, options.Progress, cancellationToken).ConfigureAwait(false);
                var found = await provider.ReadTemplateFingerprintAsync(admin, template, cancellationToken).ConfigureAwait(false);
                fromTemplate = found == fingerprint && !options.RebuildTemplate;
                templateStatus = fromTemplate ? $"a copy of the schema template {template}"
                    : found is null ? $"no schema template yet: this run builds {template}"
                    : options.RebuildTemplate ? $"{TestKitEnvironment.RebuildTemplateVariable} asks for a new schema template: this run builds {template} again"
                    : $"the schema's fingerprint changed: this run builds {template} again";
            }
        }

        try
        {
            if (fromTemplate)
            {
                // A spare copy made while an earlier run's tests ran is renamed in no time; else the copy is made now.
                if (await provider.TryClaimSpareAsync(admin, template!, options.SchemaFingerprint!, name, marker, cancellationToken).ConfigureAwait(false))
                    templateStatus += ", made ready by an earlier run";
                else
                    await provider.CreateDatabaseFromTemplateAsync(admin, name, template!, marker, cancellationToken).ConfigureAwait(false);
            }
            else
                await provider.CreateDatabaseAsync(admin, name, marker, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (templateLock is not null)
                await templateLock.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        try
        {
            var scopeConnectionString = provider.ForDatabase(given, name, ApplicationName);
            var linqToDBProvider = provider.DetectsOnAnyOpenConnection
                ? null
                : await DetectAsync(provider, scopeConnectionString, server, describedSource, name, cancellationToken).ConfigureAwait(false);
            var database = new TestDatabase(provider, name, adminConnectionString, given, server, describedSource, marker, options, linqToDBProvider, throwaway)
            {
                SchemaFromTemplate = fromTemplate,
                TemplateStatus = templateStatus,
                ServerDescription = serverDescription,
            };

            // A copy is ready; a build keeps other runs of the family waiting until SaveTemplateAsync has saved it.
            if (fromTemplate)
            {
                await templateLock!.DisposeAsync().ConfigureAwait(false);
                templateLock = null;
                database._spare = database.MakeSpareAsync(new TemplateBuild(template!, options.SchemaFingerprint!));
            }
            else if (template is not null)
            {
                database._templateLock = templateLock;
                database._templateToSave = new TemplateBuild(template, options.SchemaFingerprint!);
            }

            return database;
        }
        catch
        {
            await provider.DropDatabaseAsync(admin, name, CancellationToken.None).ConfigureAwait(false);
            if (templateLock is not null)
                await templateLock.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    sealed record TemplateBuild(string Name, string Fingerprint);

    /// <summary>The name of the template database of a family of runs: one per family and server.</summary>
    internal static string TemplateName(string family) =>
        $"{NamePrefix}_template_{Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(family)))[..12]}";

    /// <summary>
    /// Whether this database was copied from the schema template of an earlier run with the same
    /// <see cref="TestDatabaseOptions.SchemaFingerprint"/>: its schema, and whatever the set-up committed, are in place,
    /// and the set-up need not run again.
    /// </summary>
    public bool SchemaFromTemplate { get; private init; }

    /// <summary>What kind of server the database is on, as the provider tells it (a SQL Server flavour); <see langword="null"/> when it does not.</summary>
    internal string? ServerDescription { get; private init; }

    /// <summary>What became of the schema template, for the run's messages; <see langword="null"/> when none was asked for.</summary>
    internal string? TemplateStatus { get; private set; }

    /// <summary>
    /// Keeps this database, as the set-up left it, as the schema template of its family, with the prepared state
    /// <see cref="RecordPreparedStateAsync"/> recorded, if it was called before
    /// (<see cref="TestDatabaseOptions.SchemaTemplate"/>) for later runs with the same fingerprint, replacing the one
    /// before; call it once the schema is applied, before the first test. Does nothing when the database was copied
    /// from the template, or no template was asked for.
    /// </summary>
    /// <remarks>Other runs of the family that start meanwhile wait for it, then copy the template it saved.</remarks>
    public async Task SaveTemplateAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _templateToSave, null) is not { } template)
            return;

        try
        {
            await EndingScopesAsync().ConfigureAwait(false);
            // The template keeps the prepared state the leak check recorded, so that its copies need not read every table.
            if (_leakCheck is not null)
                await _leakCheck.StorePreparedStateAsync(cancellationToken).ConfigureAwait(false);
            await using var admin = await ConnectAsync(Provider, _adminConnectionString, _server, _describedSource, _server.Database, cancellationToken).ConfigureAwait(false);
            var failure = await Provider.SaveTemplateAsync(admin, Name, template.Name, template.Fingerprint, CloseIdleConnections, cancellationToken).ConfigureAwait(false);
            TemplateStatus = failure is null ? $"built and saved the schema template {template.Name}" : $"the schema template {template.Name} was not saved: {failure}";
            if (failure is null)
                _spare = MakeSpareAsync(template);
        }
        finally
        {
            await ReleaseTemplateLockAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Makes, while this run's tests run, the copy of the template the next run will rename instead of copying. Its
    /// failure only makes the next run copy the template itself.
    /// </summary>
    Task MakeSpareAsync(TemplateBuild template) => Task.Run(async () =>
    {
        try
        {
            await using var admin = Provider.CreateConnection(_adminConnectionString);
            await admin.OpenAsync().ConfigureAwait(false);
            await using var held = await Provider.LockTemplateAsync(admin, template.Name, closeConnection: false, progress: null, CancellationToken.None).ConfigureAwait(false);
            await Provider.MakeSpareAsync(admin, template.Name, template.Fingerprint, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is DbException or InvalidOperationException or TestKitConfigurationException)
        {
            // The next run copies the template itself.
        }
    });

    async Task ReleaseTemplateLockAsync()
    {
        if (Interlocked.Exchange(ref _templateLock, null) is { } held)
            await held.DisposeAsync().ConfigureAwait(false);
    }

    void CloseIdleConnections()
    {
        Provider.ClearPool(ScopeConnectionString);
        Provider.ClearPool(_kitConnectionString);
        Provider.ClearPool(ConnectionString);
        _leakCheck?.ClearPool();
    }

    static async Task<TestDatabase> AttachAsync(
        DatabaseProvider provider, TestDatabaseOptions options, string existing, string given, ParsedConnectionString server, string describedSource, CancellationToken cancellationToken)
    {
        if (!options.AllowExistingDatabase)
        {
            throw new TestKitConfigurationException(
                $"{TestKitEnvironment.ExistingDatabaseVariable} names '{existing}', a database the kit did not create. The kit writes only into databases " +
                "it creates for the run, so that tests can never change data that matters. To run in it anyway, also set " +
                $"{TestKitEnvironment.AllowExistingDatabaseVariable}=true (the kit will never drop it); or unset {TestKitEnvironment.ExistingDatabaseVariable} " +
                "and let the kit create a database of its own.");
        }

        string? serverDescription;
        IDataProvider linqToDBProvider;
        await using (var connection = await ConnectAsync(provider, provider.ForDatabase(given, existing, ApplicationName), server, describedSource, existing, cancellationToken).ConfigureAwait(false))
        {
            serverDescription = await provider.DescribeServerAsync(connection, cancellationToken).ConfigureAwait(false);
            linqToDBProvider = provider.DetectLinqToDBProvider(connection);
        }

        return new TestDatabase(provider, existing, provider.ForDatabase(given, server.Database, ApplicationName), given, server, describedSource, marker: null, options,
            linqToDBProvider, throwaway: null)
        {
            ServerDescription = serverDescription,
        };
    }

    static IDataProvider Detect(DatabaseProvider provider, string connectionString)
    {
        using var connection = provider.CreateConnection(connectionString);
        connection.Open();
        return provider.DetectLinqToDBProvider(connection);
    }

    static async Task<IDataProvider> DetectAsync(
        DatabaseProvider provider, string connectionString, ParsedConnectionString server, string describedSource, string database, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(provider, connectionString, server, describedSource, database, cancellationToken).ConfigureAwait(false);
        return provider.DetectLinqToDBProvider(connection);
    }

    /// <summary>
    /// Records what every table holds now, as the state every test must leave the database in: call it once the schema
    /// and any shared seed data are in place, before the first test. <see cref="FindLeaksAsync"/> compares with it.
    /// </summary>
    /// <remarks>The NUnit integration calls it after <c>TestRun.PrepareDatabaseAsync</c>. Does nothing when <see cref="ChecksForLeaks"/> is off.</remarks>
    public Task RecordPreparedStateAsync(CancellationToken cancellationToken = default) =>
        _leakCheck?.RecordPreparedStateAsync(SchemaFromTemplate, cancellationToken) ?? Task.CompletedTask;

    /// <summary>
    /// The tables whose committed contents differ from the state <see cref="RecordPreparedStateAsync"/> recorded, each
    /// with its row counts: whatever persisted, however it got past the tests' scopes.
    /// </summary>
    /// <returns>One line per table that changed; <see langword="null"/> when none did, or no state was recorded.</returns>
    /// <remarks>It waits for a running <see cref="RealCommitSession"/> to end and reset, since what the session commits meanwhile is no leak.</remarks>
    public Task<string?> FindLeaksAsync(CancellationToken cancellationToken = default) =>
        _leakCheck is null ? Task.FromResult<string?>(null) : OutsideSessions(_leakCheck.FindLeaksAsync, cancellationToken);

    /// <summary>The changes since the previous call (or the prepared state): each reported once, for a look after each test class.</summary>
    internal Task<string?> FindNewLeaksAsync(CancellationToken cancellationToken = default) =>
        _leakCheck is null ? Task.FromResult<string?>(null) : OutsideSessions(_leakCheck.FindNewLeaksAsync, cancellationToken);

    async Task<string?> OutsideSessions(Func<CancellationToken, Task<string?>> look, CancellationToken cancellationToken)
    {
        // Inside a session's own flow, waiting for the session would never end: look at what it has committed so far.
        if (RealCommitSession.Current?.Database == this)
            return await look(cancellationToken).ConfigureAwait(false);

        await EndingScopesAsync().ConfigureAwait(false);
        await _gate.EnterSharedAsync(reentrant: true, cancellationToken).ConfigureAwait(false);
        try
        {
            return await look(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.ExitShared();
        }
    }

    /// <summary>How long <see cref="BeginRealCommitsAsync"/> waits for the open scopes to end before it gives up.</summary>
    static readonly TimeSpan RealCommitPatience = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Begins a <see cref="RealCommitSession"/>: once every open scope has ended, code commits for real to this database
    /// until the session is disposed, which returns every table it changed to the state the run prepared. Scopes begun
    /// meanwhile wait for it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The calling flow is inside a scope or a session of this database already.</exception>
    /// <exception cref="TestScopeException">Scopes stayed open for minutes; the message says how many.</exception>
    /// <remarks>
    /// The calling flow knows the session from the moment of the call (<see cref="RealCommitSession.Current"/>): a scope,
    /// or a second session, begun in it while the session runs is refused at once instead of waiting for it forever.
    /// </remarks>
    public Task<RealCommitSession> BeginRealCommitsAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        RefuseSessionInSameFlow();
        // Not an async method, so that the claim made here stays with the caller after it returns.
        var claim = RealCommitSession.ClaimForCallingFlow();
        return BeginClaimedRealCommitsAsync(claim, cancellationToken);
    }

    void RefuseSessionInSameFlow()
    {
        if (TestScope.Current?.Database == this)
        {
            throw new InvalidOperationException(
                $"This flow is inside {TestScope.Current}, whose transaction is rolled back: it cannot also commit for real, and the session would wait for " +
                "the scope to end forever. Mark the test [RealCommits] instead of giving it a scope, or begin the session outside the scope.");
        }

        if (RealCommitSession.Current?.Database == this)
            throw new InvalidOperationException($"This flow is inside {RealCommitSession.Current} already: one session at a time.");
    }

    async Task<RealCommitSession> BeginClaimedRealCommitsAsync(RealCommitSession.Claim claim, CancellationToken cancellationToken)
    {
        using (var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            patience.CancelAfter(RealCommitPatience);
            try
            {
                await _gate.EnterExclusiveAsync(patience.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TestScopeException(
                    $"A real-commit session waited {RealCommitPatience.TotalMinutes:0} minutes for the run's open test scopes to end ({_gate.SharedHolders} still open), " +
                    "and gave up: a scope that is never disposed, or a test that runs this long beside it. Dispose every scope you begin.");
            }
        }

        Interlocked.Increment(ref _sessionMoves);
        try
        {
            await using var connection = await OpenKitConnectionAsync(cancellationToken).ConfigureAwait(false);
            _changeTracker ??= await Provider.InstallChangeTrackingAsync(connection, cancellationToken).ConfigureAwait(false);
            // What changed since the last reset was committed by no session: a leak, reported now, before a reset could erase it.
            var leaked = await _changeTracker.BeginAsync(connection, cancellationToken).ConfigureAwait(false);
            if (leaked.Count > 0 && _leakCheck is not null)
                await _leakCheck.NoteChangedBeforeSessionAsync(leaked, cancellationToken).ConfigureAwait(false);
            return new RealCommitSession(this, _changeTracker).WithClaim(claim);
        }
        catch
        {
            Interlocked.Increment(ref _sessionMoves);
            _gate.ExitExclusive();
            throw;
        }
    }

    /// <summary>
    /// Installs what real-commit sessions need before any scope begins, where no scope's locks can be in the way; the
    /// first session installs it otherwise. A schema template saved afterwards carries it.
    /// </summary>
    internal async Task PrepareRealCommitsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenKitConnectionAsync(cancellationToken).ConfigureAwait(false);
        _changeTracker ??= await Provider.InstallChangeTrackingAsync(connection, cancellationToken).ConfigureAwait(false);
    }

    internal async Task<IReadOnlyList<string>> ResetAsync(ChangeTracker tracker)
    {
        await using var connection = await OpenKitConnectionAsync(CancellationToken.None).ConfigureAwait(false);
        return await tracker.ResetAsync(connection, CancellationToken.None).ConfigureAwait(false);
    }

    internal void EndRealCommits()
    {
        Interlocked.Increment(ref _sessionMoves);
        _gate.ExitExclusive();
    }

    /// <summary>A scope lets real-commit sessions begin again.</summary>
    internal void ScopeEnded() => _gate.ExitShared();

    /// <summary>A nested scope holds the database as a scope of its own while its test runs.</summary>
    internal Task NestedScopeBegins(CancellationToken cancellationToken) => _gate.EnterSharedAsync(reentrant: false, cancellationToken);

    async Task<DbConnection> OpenKitConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = Provider.CreateConnection(_kitConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Begins a test scope: a connection of its own and an outer transaction that its disposal rolls back.</summary>
    public Task<TestScope> BeginScopeAsync(CancellationToken cancellationToken = default) => BeginScope(async: true, cancellationToken).AsTask();

    /// <summary>Begins a test scope: a connection of its own and an outer transaction that its disposal rolls back.</summary>
    public TestScope BeginScope() => BeginScope(async: false, CancellationToken.None).GetAwaiter().GetResult();

    async ValueTask<TestScope> BeginScope(bool async, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (RealCommitSession.Current?.Database == this)
        {
            throw new InvalidOperationException(
                $"This flow is inside {RealCommitSession.Current}, which has the run's database to itself: a scope begun here would wait for it forever. " +
                "A test commits for real or runs in a scope, not both.");
        }

        // What the tests that ended before this one began left on its way to the server is finished first.
        var ending = EndingScopesAsync();
        if (!ending.IsCompleted)
        {
            if (async)
                await ending.ConfigureAwait(false);
            else
                ending.GetAwaiter().GetResult();
        }

        // Scopes wait while a real-commit session has the database; a flow inside a scope of this database already
        // holds the gate, and must not queue behind a session that waits for that scope.
        var entered = _gate.EnterSharedAsync(reentrant: TestScope.Current?.Database == this, cancellationToken);
        if (async)
            await entered.ConfigureAwait(false);
        else
            entered.GetAwaiter().GetResult();

        var connection = Provider.CreateConnection(ScopeConnectionString);
        try
        {
            DbTransaction outer;
            if (async)
            {
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                outer = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                connection.Open();
                outer = connection.BeginTransaction();
            }

            if (Provider.DeepenTransaction is { } deepen)
            {
                await using var command = connection.CreateCommand();
                command.CommandText = string.Join("; ", Enumerable.Repeat(deepen, Provider.ScopeTransactionDepth - 1));
                command.Transaction = outer;
                if (async)
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                else
                    command.ExecuteNonQuery();
            }

            return new TestScope(this, connection, outer);
        }
        catch (Exception exception)
        {
            _gate.ExitShared();
            await connection.DisposeAsync().ConfigureAwait(false);
            if (exception is OperationCanceledException)
                throw;
            if (Provider.ClassifyStatementFailure(exception, connection) == StatementFailure.ConnectionLost)
                ClearScopePool();
            throw ConnectError(Provider, exception, _server, _describedSource, Name);
        }
    }

    /// <summary>
    /// Drops the database if the kit created it for this run and was not told to keep it; stops the server, if the kit
    /// started one for the run.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;

        lock (Checked)
            Checked.Remove(this);
        try
        {
            await EndingScopesAsync().ConfigureAwait(false);
            await ReleaseTemplateLockAsync().ConfigureAwait(false);
            if (_spare is not null)
                await _spare.ConfigureAwait(false);
            if (!KeepsDatabase)
                await DropAsync().ConfigureAwait(false);
            else if (CreatedByKit && _throwaway is null)
                await MarkKeptAsync().ConfigureAwait(false);
        }
        finally
        {
            if (Interlocked.Exchange(ref _runHold, null) is { } hold)
                await hold.DisposeAsync().ConfigureAwait(false);
            if (_throwaway is not null)
                await _throwaway.DisposeAsync().ConfigureAwait(false);
        }
    }

    async Task DropAsync()
    {
        // Clearing the pools closes the run's idle connections, which DROP DATABASE would wait for, and those a server
        // restart killed, which would fail the drop.
        Provider.ClearPool(ScopeConnectionString);
        Provider.ClearPool(_kitConnectionString);
        Provider.ClearPool(ConnectionString);
        Provider.ClearPool(_adminConnectionString);
        await using var admin = await ConnectAsync(Provider, _adminConnectionString, _server, _describedSource, _server.Database, CancellationToken.None).ConfigureAwait(false);
        if (!await Provider.DatabaseExistsAsync(admin, Name, CancellationToken.None).ConfigureAwait(false))
            return;

        var found = await Provider.ReadMarkerAsync(admin, Name, CancellationToken.None).ConfigureAwait(false);
        if (found != _marker)
        {
            throw new TestKitConfigurationException(
                $"Refusing to drop database '{Name}': it does not carry the mark this run stamped on it when it created it " +
                $"({(found is null ? "it has no mark" : "it has another mark")}). The kit drops only the database it created in this run.");
        }

        await Provider.DropDatabaseAsync(admin, Name, CancellationToken.None).ConfigureAwait(false);
    }

    async Task MarkKeptAsync()
    {
        await using var admin = await ConnectAsync(Provider, _adminConnectionString, _server, _describedSource, _server.Database, CancellationToken.None).ConfigureAwait(false);
        await Provider.MarkKeptAsync(admin, Name, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Whether the kit started the server for this run, and stops it with the database.</summary>
    public bool OnThrowawayServer => _throwaway is not null;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Provider.DisplayName} database '{Name}' on {_server.Server}{(ServerDescription is null ? string.Empty : $" ({ServerDescription})")}" +
        (_throwaway is null ? string.Empty : $", a {_throwaway.Description}");

    /// <summary>
    /// Reads, before an application under test starts, what every table of each database whose leak check is on holds.
    /// Returns what to call once it has started, with its name: that takes what the start-up committed meanwhile
    /// (migrations, seed data) into the prepared states, as if the run's preparation had done it, and says so on the
    /// run's output. <see langword="null"/> when no database has a prepared state to compare with.
    /// </summary>
    internal static Action<string>? WatchApplicationStart()
    {
        List<TestDatabase> databases;
        lock (Checked)
            databases = [.. Checked];

        var read = new List<(TestDatabase Database, int SessionMoves, IReadOnlyDictionary<string, TableContents> Before)>();
        foreach (var database in databases)
        {
            var sessionMoves = Volatile.Read(ref database._sessionMoves);
            if (database._leakCheck!.ReadForApplicationStartAsync(CancellationToken.None).GetAwaiter().GetResult() is { } before)
                read.Add((database, sessionMoves, before));
        }

        if (read.Count == 0)
            return null;

        return application =>
        {
            foreach (var (database, sessionMoves, before) in read)
            {
                if (Volatile.Read(ref database._disposed) != 0)
                    continue;

                // What a real-commit session committed meanwhile, and puts back, cannot be told from the start-up's work: nothing is taken then.
                var after = database._leakCheck!.ReadForApplicationStartAsync(CancellationToken.None).GetAwaiter().GetResult()!;
                if (sessionMoves % 2 != 0 || Volatile.Read(ref database._sessionMoves) != sessionMoves)
                {
                    if (before.Count == after.Count && before.All(table => after.TryGetValue(table.Key, out var now) && now == table.Value))
                        continue;

                    database._notes.Enqueue(
                        $"{application} started while a real-commit test ran: the kit cannot tell what the start-up committed from what the test did, so " +
                        "the leak check reports what the start-up changed. Start the application in the run's preparation.");
                    continue;
                }

                if (database._leakCheck.AcceptApplicationStart(before, after) is { } changes)
                {
                    var resets = database._changeTracker is null
                        ? "Start the application in the run's preparation to have it there from the first test."
                        : "Real-commit tests, whose resets were prepared before it, do not restore what it made: start the application in the run's " +
                          "preparation, before the kit prepares them.";
                    database._notes.Enqueue(
                        $"{application} changed {database.Name} as it started (migrations, seed data): the tests that follow begin from it, and the leak " +
                        $"check compares with it from now on. {resets}\n  {changes}");
                }
            }
        };
    }

    /// <summary>
    /// What the run should tell its user that happened outside every test (an application's start-up that changed the
    /// database), once each; the integrations print it where the run's output reaches the user.
    /// </summary>
    internal IEnumerable<string> TakeNotes()
    {
        while (_notes.TryDequeue(out var note))
            yield return note;
    }

    /// <summary>
    /// Closes the scopes' idle pooled connections, and those in use as they come back, so that the next scope opens a
    /// fresh one: after a lost connection the pool may hold more dead ones (a restarted server), and a session that may
    /// hold what the rollback leaves (a lock the session owns) must not be passed on.
    /// </summary>
    internal void ClearScopePool() => Provider.ClearPool(ScopeConnectionString);

    readonly HashSet<Task> _endingScopes = [];

    /// <summary>A scope's rollback, sent and not yet answered (<see cref="TestScope.EndBetweenTests"/>).</summary>
    internal void EndingInBackground(Task rollback)
    {
        lock (_endingScopes)
            _endingScopes.Add(rollback);
        rollback.ContinueWith(
            static (done, state) =>
            {
                var ending = (HashSet<Task>)state!;
                lock (ending)
                    ending.Remove(done);
            },
            _endingScopes, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>
    /// Completes when every scope that has ended so far has had its rollback answered and its connection returned: a
    /// test that begins after another has ended finds nothing of it left, not even a lock.
    /// </summary>
    internal Task EndingScopesAsync()
    {
        lock (_endingScopes)
            return _endingScopes.Count == 0 ? Task.CompletedTask : Task.WhenAll([.. _endingScopes]);
    }

    static async Task<DbConnection> ConnectAsync(
        DatabaseProvider provider, string connectionString, ParsedConnectionString server, string describedSource, string? database, CancellationToken cancellationToken)
    {
        var connection = provider.CreateConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            var failure = provider.ClassifyConnectFailure(exception);
            // A driver may not say that nothing listens there (SqlClient on Linux: "error: 35 - An internal exception was caught").
            if (failure == ConnectFailure.Other && !await ThrowawayServer.AnswersAsync(server.Host, server.Port, CancellationToken.None).ConfigureAwait(false))
                failure = ConnectFailure.Unreachable;
            throw ConnectError(provider, exception, server, describedSource, database, failure);
        }
    }

    static TestKitConfigurationException ConnectError(
        DatabaseProvider provider, Exception exception, ParsedConnectionString server, string describedSource, string? database, ConnectFailure? failure = null)
    {
        var who = server.User is null ? string.Empty : $" as '{server.User}'";
        var (cause, fix) = (failure ?? provider.ClassifyConnectFailure(exception)) switch
        {
            ConnectFailure.Unreachable => ("nothing accepts connections there",
                $"Start a server ({provider.StartServerHint}), or set {provider.ConnectionVariable} to one that runs."),
            ConnectFailure.UnknownHost => ("the host name does not resolve to an address",
                $"Correct the host in {provider.ConnectionVariable}."),
            ConnectFailure.AuthenticationFailed => ("the server refused the user name or password",
                $"Correct the user name and password in {provider.ConnectionVariable}."),
            ConnectFailure.Timeout => ("the server did not answer in time",
                $"Check the host and port in {provider.ConnectionVariable}, and that the server runs and accepts connections from here."),
            ConnectFailure.DatabaseMissing when database == server.Database => ($"database '{database}' does not exist",
                $"Name an existing database in {provider.ConnectionVariable} (the kit creates the run's own database from there), or leave the database out."),
            ConnectFailure.DatabaseMissing => ($"database '{database}' does not exist",
                $"Correct {TestKitEnvironment.ExistingDatabaseVariable}, or unset it and let the kit create a database of its own."),
            _ => (Secrets.Scrub(exception.Message, server.Password),
                $"Check {provider.ConnectionVariable} and the server."),
        };
        return new TestKitConfigurationException(
            $"Could not connect to {provider.DisplayName} at {server.Server}{who} (from {describedSource}): {cause}. {fix}",
            Secrets.SafeInner(exception, server.Password));
    }
}

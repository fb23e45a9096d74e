namespace Linq2DbTestKit;

/// <summary>
/// Where and how <see cref="TestDatabase.CreateAsync"/> makes the database for a test run.
/// <see cref="FromEnvironment(DatabaseProvider)"/> reads them from the kit's environment variables.
/// </summary>
public sealed record TestDatabaseOptions
{
    /// <summary>
    /// The server to connect to. Its database, if it names one, is used only to create and drop the run's database.
    /// </summary>
    /// <value><see langword="null"/> uses <see cref="DatabaseProvider.DefaultConnectionString"/>.</value>
    public string? ConnectionString { get; init; }

    /// <summary>Keep the run's database when the run ends, for debugging.</summary>
    /// <value><see langword="false"/>: the database is dropped.</value>
    public bool KeepDatabase { get; init; }

    /// <summary>
    /// Run in this existing database instead of creating one. The kit refuses unless
    /// <see cref="AllowExistingDatabase"/> is set, and never drops it.
    /// </summary>
    /// <value><see langword="null"/>: the kit creates a database of its own for the run.</value>
    public string? ExistingDatabase { get; init; }

    /// <summary>Allow the kit to write into <see cref="ExistingDatabase"/>, a database it did not create.</summary>
    /// <value><see langword="false"/>.</value>
    public bool AllowExistingDatabase { get; init; }

    /// <summary>
    /// Wrap every statement in a savepoint of its own, so that on PostgreSQL a failed statement rolls back alone instead
    /// of aborting the test's transaction: a test can assert an expected database error and carry on. It costs a round
    /// trip per statement. The default of each scope's <see cref="TestScope.StatementSavepoints"/>.
    /// </summary>
    /// <value><see langword="false"/>. SQL Server rolls back a failed statement alone anyway; there the mode does nothing.</value>
    public bool StatementSavepoints { get; init; }

    /// <summary>
    /// Make the linq2db contexts that code in a test builds itself — <c>new AppDb()</c>, <c>new AppDb("Name")</c>,
    /// <c>new AppDb(providerName, connectionString)</c>, <c>new DataOptions().UsePostgreSQL(connectionString)</c> — join
    /// the test's scope when they connect to the run's database. Outside a test they connect as they always do.
    /// </summary>
    /// <value><see langword="true"/>. Turn it off only if the application must keep linq2db's <c>DataProviderBase.OnConnectionCreated</c> to itself.</value>
    public bool InterceptConnections { get; init; } = true;

    /// <summary>
    /// What the kit does when <see cref="ConnectionString"/> is not given and nothing answers at the provider's default
    /// address: start a throwaway server for the run, and stop it at the end.
    /// </summary>
    /// <value><see cref="ServerStart.Auto"/>: a container when Docker answers, else the database's own binaries.</value>
    public ServerStart StartServer { get; init; } = ServerStart.Auto;

    /// <summary>
    /// Compare every table with its prepared state after the tests (<see cref="TestDatabase.FindLeaksAsync"/>), and fail
    /// the run when anything persisted; fail a test whose code writes to another database than the run's. Turn it off
    /// for a run that commits data on purpose.
    /// </summary>
    /// <value><see langword="true"/>.</value>
    public bool CheckForLeaks { get; init; } = true;

    /// <summary>
    /// The name of the family of runs that share a template of the prepared database — one per test project, say. With
    /// <see cref="SchemaFingerprint"/>, a run whose fingerprint matches the family's template copies it instead of
    /// applying the schema again (<see cref="TestDatabase.SchemaFromTemplate"/>).
    /// </summary>
    /// <value><see langword="null"/>: no template.</value>
    public string? SchemaTemplate { get; init; }

    /// <summary>
    /// What identifies the schema the run's set-up applies — the migrations, and whatever else it depends on — as a
    /// string that changes when any of it does. A changed fingerprint rebuilds the template.
    /// </summary>
    /// <value><see langword="null"/>: no template.</value>
    public string? SchemaFingerprint { get; init; }

    /// <summary>
    /// Receives what the kit does or waits for while it creates the run's database, a line at a time: waiting for
    /// another run that builds the schema template, removing what killed runs left. The NUnit integration prints it.
    /// </summary>
    public Action<string>? Progress { get; init; }

    /// <summary>Build the template again even if its fingerprint matches: <see cref="TestKitEnvironment.RebuildTemplateVariable"/>.</summary>
    /// <value><see langword="false"/>.</value>
    public bool RebuildTemplate { get; init; }

    /// <summary>
    /// Where a setting came from, for error messages: the environment variable, or <see langword="null"/> when set in code.
    /// </summary>
    internal string? ConnectionStringSource { get; init; }

    /// <summary>
    /// Reads the options for <paramref name="provider"/> from <see cref="DatabaseProvider.ConnectionVariable"/>,
    /// <see cref="TestKitEnvironment.KeepDatabaseVariable"/>, <see cref="TestKitEnvironment.ExistingDatabaseVariable"/>,
    /// <see cref="TestKitEnvironment.AllowExistingDatabaseVariable"/>, <see cref="TestKitEnvironment.StatementSavepointsVariable"/>,
    /// <see cref="TestKitEnvironment.InterceptConnectionsVariable"/>, <see cref="TestKitEnvironment.LeakCheckVariable"/> and
    /// <see cref="TestKitEnvironment.StartServerVariable"/>, <see cref="TestKitEnvironment.RebuildTemplateVariable"/>.
    /// </summary>
    /// <exception cref="TestKitConfigurationException">A yes/no variable holds something else.</exception>
    public static TestDatabaseOptions FromEnvironment(DatabaseProvider provider) => FromEnvironment(provider, Environment.GetEnvironmentVariable);

    internal static TestDatabaseOptions FromEnvironment(DatabaseProvider provider, Func<string, string?> read)
    {
        ArgumentNullException.ThrowIfNull(provider);

        var connectionString = read(provider.ConnectionVariable);
        var existing = read(TestKitEnvironment.ExistingDatabaseVariable)?.Trim();
        return new TestDatabaseOptions
        {
            ConnectionString = string.IsNullOrWhiteSpace(connectionString) ? null : connectionString,
            ConnectionStringSource = string.IsNullOrWhiteSpace(connectionString) ? null : provider.ConnectionVariable,
            KeepDatabase = TestKitEnvironment.ReadFlag(read, TestKitEnvironment.KeepDatabaseVariable),
            ExistingDatabase = string.IsNullOrEmpty(existing) ? null : existing,
            AllowExistingDatabase = TestKitEnvironment.ReadFlag(read, TestKitEnvironment.AllowExistingDatabaseVariable),
            StatementSavepoints = TestKitEnvironment.ReadFlag(read, TestKitEnvironment.StatementSavepointsVariable),
            InterceptConnections = TestKitEnvironment.ReadFlag(read, TestKitEnvironment.InterceptConnectionsVariable, defaultValue: true),
            CheckForLeaks = TestKitEnvironment.ReadFlag(read, TestKitEnvironment.LeakCheckVariable, defaultValue: true),
            StartServer = TestKitEnvironment.ReadServerStart(read),
            RebuildTemplate = TestKitEnvironment.ReadFlag(read, TestKitEnvironment.RebuildTemplateVariable),
        };
    }
}

using Linq2DbTestKit.Internal;

namespace Linq2DbTestKit.Xunit;

/// <summary>
/// The set-up of a test assembly's run: derive a class from it, naming the provider, and make it the assembly's fixture
/// with <c>[assembly: AssemblyFixture(typeof(Run))]</c>. Before the first test it checks the server and creates the
/// run's database, then lets <see cref="PrepareDatabaseAsync"/> apply the schema once and records what every table
/// holds; after the last test it compares every table with that, failing the run when anything persisted, and drops
/// the database.
/// </summary>
/// <remarks>
/// When <see cref="TestKitEnvironment.ProviderVariable"/> selects another provider, every <see cref="DatabaseTest"/> of
/// the assembly is reported as skipped, with the reason and the variables to set. When the server cannot be reached,
/// every test fails with a message that says how to fix it. The run's lines (<c>linq2db-testkit: …</c>) are xUnit's
/// diagnostic messages: <c>"diagnosticMessages": true</c> in <c>xunit.runner.json</c> shows them.
/// </remarks>
/// <example>
/// <code>
/// [assembly: AssemblyFixture(typeof(Run))]
///
/// public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance)
/// {
///     protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) =>
///         Migrations.ApplyAsync(database, cancellationToken);
/// }
/// </code>
/// </example>
public abstract class TestRun : global::Xunit.IAsyncLifetime
{
    static TestRun? current;

    readonly DatabaseProvider _provider;
    TestDatabase? _database;
    string? _skipReason;

    /// <summary>Creates the run for <paramref name="provider"/>.</summary>
    protected TestRun(DatabaseProvider provider) => _provider = provider ?? throw new ArgumentNullException(nameof(provider));

    /// <summary>The database of the running test assembly.</summary>
    /// <exception cref="InvalidOperationException">The assembly has no fixture derived from <see cref="TestRun"/>, or it did not start.</exception>
    public static TestDatabase Database => current?._database ?? throw new InvalidOperationException(NoRun);

    const string NoRun =
        "No test run has started this test's database: add an assembly fixture derived from Linq2DbTestKit.Xunit.TestRun: " +
        "[assembly: AssemblyFixture(typeof(Run))] and public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance);";

    /// <summary>Why the run's tests are skipped; <see langword="null"/> when they run.</summary>
    internal static string? SkipReason => current is null ? throw new InvalidOperationException(NoRun) : current._skipReason;

    /// <summary>Checks the server, creates the run's database and prepares it. xUnit runs it once, before the first test.</summary>
    public async ValueTask InitializeAsync()
    {
        if (Interlocked.CompareExchange(ref current, this, null) is { } other)
            throw new InvalidOperationException($"This test assembly has two test runs, {other.GetType()} and {GetType()}: keep one assembly fixture derived from TestRun.");

        _skipReason = TestKitEnvironment.SkipReason(_provider);
        if (_skipReason is not null)
        {
            Progress(_skipReason);
            return;
        }

        var cancellationToken = global::Xunit.TestContext.Current.CancellationToken;
        var options = await CreateOptionsAsync(cancellationToken).ConfigureAwait(false);
        await RunLifecycle.StartAsync(_provider, options, GetType(), SchemaInputs, PrepareDatabaseAsync,
            RunLifecycle.AnyMarked(GetType().Assembly, typeof(RealCommitsAttribute)), database => _database = database, Progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Compares every table with its prepared state, then drops the run's database, unless it is to be kept. xUnit runs
    /// it once, after the last test; it fails the run (a cleanup failure of the assembly, and a non-zero exit code) when
    /// anything the tests did persisted. A derived run that overrides it (to stop an application first) calls the base's last.
    /// </summary>
    public virtual async ValueTask DisposeAsync()
    {
        var database = Interlocked.Exchange(ref _database, null);
        Interlocked.CompareExchange(ref current, null, this);
        GC.SuppressFinalize(this);
        if (database is null)
            return;

        var failure = await RunLifecycle.EndAsync(database, Progress, whereClassesAreNamed: null).ConfigureAwait(false);
        if (failure is not null)
            throw new TestScopeException(failure);
    }

    static void Progress(string line) => global::Xunit.TestContext.Current.SendDiagnosticMessage($"linq2db-testkit: {line}");

    /// <summary>
    /// The options of the run's database; by default, those of the environment variables. Override it to start a server
    /// first (a container, a local cluster) and return its connection string.
    /// </summary>
    protected virtual Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(TestDatabaseOptions.FromEnvironment(_provider));

    /// <summary>
    /// What the set-up applies, to reuse the prepared database across runs (a schema template): the assemblies of the
    /// migrations, the files or directories of migration scripts, and any text that should count too. When set, a later
    /// run with the same inputs copies the template instead of preparing, and <see cref="PrepareDatabaseAsync"/> does not
    /// run. See the NUnit integration's <c>TestRun.SchemaInputs</c>, which works the same.
    /// </summary>
    /// <value><see langword="null"/>: every run prepares its database.</value>
    protected virtual IEnumerable<object>? SchemaInputs => null;

    /// <summary>
    /// Applies the schema to the new database (run the project's migrations here). Runs once, before the first test;
    /// not at all when the database was copied from the schema template (<see cref="SchemaInputs"/>).
    /// </summary>
    protected virtual Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => Task.CompletedTask;
}

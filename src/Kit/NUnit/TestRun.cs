using Linq2DbTestKit.Internal;
using NUnit.Framework;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The set-up of a test assembly's run: derive a <c>[SetUpFixture]</c> from it, naming the provider, in the namespace of
/// the tests that use the database. NUnit runs a set-up fixture around the tests of its namespace and the namespaces
/// below it, so tests elsewhere in the project (pure unit tests) run without a database; outside any namespace, it runs
/// around every test of the assembly. One per assembly. Before the first test it checks the server and creates the run's database, then lets <see cref="PrepareDatabaseAsync"/>
/// apply the schema once and records what every table holds; after the last test it compares every table with that,
/// failing the run when anything persisted, and drops the database.
/// </summary>
/// <remarks>
/// When <see cref="TestKitEnvironment.ProviderVariable"/> selects another provider, every test of the assembly is reported
/// as skipped, with the reason and the variables to set. When the server cannot be reached, every test fails with a
/// message that says how to fix it.
/// </remarks>
/// <example>
/// <code>
/// [SetUpFixture]
/// public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance)
/// {
///     protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) =>
///         Migrations.ApplyAsync(database, cancellationToken);
/// }
/// </code>
/// </example>
public abstract class TestRun
{
    static TestRun? current;

    readonly DatabaseProvider _provider;
    TestDatabase? _database;

    /// <summary>Creates the run for <paramref name="provider"/>.</summary>
    protected TestRun(DatabaseProvider provider) => _provider = provider ?? throw new ArgumentNullException(nameof(provider));

    /// <summary>The database of the running test assembly.</summary>
    /// <exception cref="InvalidOperationException">The assembly has no <c>[SetUpFixture]</c> derived from <see cref="TestRun"/>, or it did not start.</exception>
    public static TestDatabase Database => current?._database ?? throw new InvalidOperationException(
        "No test run has started this test's database: add a [SetUpFixture] derived from Linq2DbTestKit.NUnit.TestRun in the namespace of the tests " +
        "that use the database (or a namespace above it): [SetUpFixture] public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance);");

    /// <summary>Checks the server, creates the run's database and prepares it. Runs once, before the first test.</summary>
    [OneTimeSetUp]
    public async Task StartRunAsync()
    {
        var skipReason = TestKitEnvironment.SkipReason(_provider);
        if (skipReason is not null)
        {
            await TestContext.Progress.WriteLineAsync($"linq2db-testkit: {skipReason}").ConfigureAwait(false);
            Assert.Ignore(skipReason);
        }

        if (AdapterProblem() is { } problem)
        {
            await TestContext.Progress.WriteLineAsync($"linq2db-testkit: {problem}").ConfigureAwait(false);
            Assert.Fail(problem);
        }

        if (Interlocked.CompareExchange(ref current, this, null) is { } other)
            throw new InvalidOperationException($"This test assembly has two test runs, {other.GetType()} and {GetType()}: keep one [SetUpFixture] derived from TestRun.");

        var cancellationToken = TestContext.CurrentContext.CancellationToken;
        var options = await CreateOptionsAsync(cancellationToken).ConfigureAwait(false);
        await RunLifecycle.StartAsync(_provider, options, GetType(), SchemaInputs, PrepareDatabaseAsync,
            RunLifecycle.AnyMarked(GetType().Assembly, typeof(RealCommitsAttribute)), database => _database = database, Progress, cancellationToken).ConfigureAwait(false);
    }

    static void Progress(string line) => TestContext.Progress.WriteLine($"linq2db-testkit: {line}");

    /// <summary>
    /// Compares every table with its prepared state, then drops the run's database, unless it is to be kept. Runs once,
    /// after the last test; fails the run when anything the tests did persisted.
    /// </summary>
    [OneTimeTearDown]
    public async Task EndRunAsync()
    {
        var database = Interlocked.Exchange(ref _database, null);
        Interlocked.CompareExchange(ref current, null, this);
        if (database is null)
            return;

        var failure = await RunLifecycle.EndAsync(database, Progress,
            "The lines 'linq2db-testkit: after …' above say after which test class each change was first seen.").ConfigureAwait(false);
        if (failure is not null)
            Assert.Fail(failure);
    }

    /// <summary>The lowest NUnit3TestAdapter that fails <c>dotnet test</c> when the run's leak check fails after the last test.</summary>
    internal const int LowestAdapterMajorVersion = 6;

    /// <summary>
    /// Why the run cannot trust the test adapter that runs it: NUnit3TestAdapter before 6 reports a failure of a set-up
    /// fixture's one-time tear-down (where the run's leak check fails) nowhere, so <c>dotnet test</c> would say the run
    /// passed while data leaked. <see langword="null"/> when the adapter is recent enough, or another runner runs the tests.
    /// </summary>
    static string? AdapterProblem()
    {
        var adapter = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == "NUnit3.TestAdapter")?.GetName();
        return adapter?.Version is { } version && version.Major < LowestAdapterMajorVersion
            ? $"This test project runs with NUnit3TestAdapter {version.ToString(3)}, which reports no failure of the run's leak check: dotnet test would pass " +
              $"although data persisted. Reference NUnit3TestAdapter {LowestAdapterMajorVersion}.0 or later " +
              $"(<PackageReference Include=\"NUnit3TestAdapter\" Version=\"{LowestAdapterMajorVersion}.3.0\" />)."
            : null;
    }

    /// <summary>After a test class: reports, once, what persisted since the previous look.</summary>
    internal static void CheckAfterClass(string testClass)
    {
        if (RunLifecycle.CheckAfterClass(current?._database, testClass) is { } line)
            Progress(line);
    }

    /// <summary>
    /// The options of the run's database; by default, those of the environment variables. Override it to start a server
    /// first (a container, a local cluster) and return its connection string.
    /// </summary>
    protected virtual Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(TestDatabaseOptions.FromEnvironment(_provider));

    /// <summary>
    /// What the set-up applies, to reuse the prepared database across runs: the assemblies of the migrations (by their
    /// build: any change to their code or embedded scripts counts), the files or directories of migration scripts read
    /// from disk, and any text that should count too. When set, the kit keeps a template of the database as
    /// <see cref="PrepareDatabaseAsync"/> left it; a later run with the same inputs copies it instead of preparing
    /// (PostgreSQL's <c>CREATE DATABASE … TEMPLATE</c>), and <see cref="PrepareDatabaseAsync"/> does not run. A change to
    /// any input builds the template again, as does <see cref="TestKitEnvironment.RebuildTemplateVariable"/>=true.
    /// </summary>
    /// <value><see langword="null"/>: every run prepares its database.</value>
    /// <example><c>protected override IEnumerable&lt;object&gt; SchemaInputs => [typeof(Migrations).Assembly, new DirectoryInfo("sql")];</c></example>
    /// <remarks>
    /// Put work that must happen in every run — starting an application, say — in a <c>[OneTimeSetUp]</c> of the derived
    /// class, not in <see cref="PrepareDatabaseAsync"/>. SQL Server has no fast copy of a database: there every run prepares.
    /// </remarks>
    protected virtual IEnumerable<object>? SchemaInputs => null;

    /// <summary>
    /// Applies the schema to the new database (run the project's migrations here). Runs once, before the first test;
    /// not at all when the database was copied from the schema template (<see cref="SchemaInputs"/>).
    /// </summary>
    protected virtual Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => Task.CompletedTask;
}

using System.Reflection;
using Linq2DbTestKit.Internal;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Linq2DbTestKit.MSTest;

/// <summary>
/// The set-up of a test assembly's run (the NUnit, xUnit and TUnit integrations' <c>TestRun</c>, named apart from MSTest's own
/// <c>TestRun</c>): derive a class from it, naming the provider, and start and end it from MSTest's
/// assembly hooks. Before the first test it checks the server and creates the run's database, then lets
/// <see cref="PrepareDatabaseAsync"/> apply the schema once and records what every table holds; after the last test it
/// compares every table with that, failing the run when anything persisted, and drops the database.
/// </summary>
/// <remarks>
/// When <see cref="TestKitEnvironment.ProviderVariable"/> selects another provider, every <see cref="DatabaseTest"/> of
/// the assembly is reported as skipped (inconclusive), with the reason and the variables to set. When the server cannot
/// be reached, every test fails with a message that says how to fix it. The run's lines (<c>linq2db-testkit: …</c>) go to
/// the standard output of the assembly's set-up.
/// </remarks>
/// <example>
/// <code>
/// [TestClass]
/// public sealed class Run() : DatabaseRun(PostgreSqlDatabaseProvider.Instance)
/// {
///     [AssemblyInitialize] public static Task Start(TestContext context) => StartAsync&lt;Run&gt;(context);
///     [AssemblyCleanup] public static Task End() => EndAsync();
///
///     protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) =>
///         Migrations.ApplyAsync(database, cancellationToken);
/// }
/// </code>
/// </example>
public abstract class DatabaseRun
{
    static DatabaseRun? current;

    readonly DatabaseProvider _provider;
    TestDatabase? _database;
    string? _skipReason;

    /// <summary>Creates the run for <paramref name="provider"/>.</summary>
    protected DatabaseRun(DatabaseProvider provider) => _provider = provider ?? throw new ArgumentNullException(nameof(provider));

    /// <summary>The database of the running test assembly.</summary>
    /// <exception cref="InvalidOperationException">The assembly's run has not started, or its start failed.</exception>
    public static TestDatabase Database => current?._database ?? throw new InvalidOperationException(NoRun);

    const string NoRun =
        "No test run has started this test's database: derive a [TestClass] from Linq2DbTestKit.MSTest.DatabaseRun and start and end it from MSTest's assembly hooks: " +
        "[AssemblyInitialize] public static Task Start(TestContext context) => StartAsync<Run>(context); [AssemblyCleanup] public static Task End() => EndAsync();";

    /// <summary>Why the run's tests are skipped; <see langword="null"/> when they run.</summary>
    internal static string? SkipReason => current is null ? throw new InvalidOperationException(NoRun) : current._skipReason;

    /// <summary>Checks the server, creates the run's database and prepares it. Call it from the assembly's <c>[AssemblyInitialize]</c>.</summary>
    /// <typeparam name="TRun">The test project's run.</typeparam>
    /// <param name="context">MSTest's context of the assembly's set-up.</param>
    protected static async Task StartAsync<TRun>(TestContext context) where TRun : DatabaseRun, new()
    {
        ArgumentNullException.ThrowIfNull(context);
        var run = new TRun();
        if (Interlocked.CompareExchange(ref current, run, null) is { } other)
            throw new InvalidOperationException($"This test assembly starts two test runs, {other.GetType()} and {typeof(TRun)}: keep one.");

        RefuseRealCommitsOutsideDatabaseTests(typeof(TRun).Assembly);
        run._skipReason = TestKitEnvironment.SkipReason(run._provider);
        if (run._skipReason is not null)
        {
            Progress(run._skipReason);
            return;
        }

        var cancellationToken = context.CancellationTokenSource.Token;
        var options = await run.CreateOptionsAsync(cancellationToken).ConfigureAwait(false);
        await RunLifecycle.StartAsync(run._provider, options, typeof(TRun), run.SchemaInputs, run.PrepareDatabaseAsync,
            RunLifecycle.AnyMarked(typeof(TRun).Assembly, typeof(RealCommitsAttribute)), database => run._database = database, Progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Compares every table with its prepared state, then drops the run's database, unless it is to be kept. Call it from
    /// the assembly's <c>[AssemblyCleanup]</c>: it fails the run (and the exit code) when anything the tests did persisted.
    /// </summary>
    protected static async Task EndAsync()
    {
        var run = Interlocked.Exchange(ref current, null);
        if (run is null)
            return;

        await run.StopAsync().ConfigureAwait(false);
        var database = Interlocked.Exchange(ref run._database, null);
        if (database is null)
            return;

        var failure = await RunLifecycle.EndAsync(database, Progress, whereClassesAreNamed: null).ConfigureAwait(false);
        if (failure is not null)
            throw new TestScopeException(failure);
    }

    /// <summary>A test marked [RealCommits] in a class that gives it no session would commit for real with nothing to reset it.</summary>
    static void RefuseRealCommitsOutsideDatabaseTests(Assembly assembly)
    {
        const BindingFlags Methods = BindingFlags.Public | BindingFlags.Instance;
        var unserved = RunLifecycle.ConcreteTypes(assembly, typeof(object))
            .Where(type => !typeof(DatabaseTest).IsAssignableFrom(type))
            .SelectMany(type => type.IsDefined(typeof(RealCommitsAttribute), inherit: true)
                ? [type.Name]
                : type.GetMethods(Methods).Where(method => method.IsDefined(typeof(RealCommitsAttribute), inherit: true)).Select(method => $"{type.Name}.{method.Name}"))
            .ToList();
        if (unserved.Count > 0)
        {
            throw new TestKitConfigurationException(
                $"{string.Join(", ", unserved)} {(unserved.Count == 1 ? "is" : "are")} marked [RealCommits], but not in a class derived from {nameof(DatabaseTest)}: nothing " +
                $"would begin a real-commit session or reset what the test commits, and scopes of other tests would run beside it. Derive the class from {nameof(DatabaseTest)}, " +
                "or begin a session yourself with DatabaseRun.Database.BeginRealCommitsAsync() and dispose it at the test's end.");
        }
    }

    static void Progress(string line) => Console.WriteLine($"linq2db-testkit: {line}");

    /// <summary>
    /// The options of the run's database; by default, those of the environment variables. Override it to start a server
    /// first (a container, a local cluster) and return its connection string.
    /// </summary>
    protected virtual Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(TestDatabaseOptions.FromEnvironment(_provider));

    /// <summary>
    /// What the set-up applies, to reuse the prepared database across runs (a schema template): the assemblies of the
    /// migrations, the files or directories of migration scripts, and any text that should count too. When set, a later
    /// run with the same inputs copies the template instead of preparing, and <see cref="PrepareDatabaseAsync"/> does not run.
    /// </summary>
    /// <value><see langword="null"/>: every run prepares its database.</value>
    protected virtual IEnumerable<object>? SchemaInputs => null;

    /// <summary>
    /// Applies the schema to the new database (run the project's migrations here). Runs once, before the first test;
    /// not at all when the database was copied from the schema template (<see cref="SchemaInputs"/>).
    /// </summary>
    protected virtual Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs after the last test, before the run's check and the drop of its database: stop an application started on it here.</summary>
    protected virtual ValueTask StopAsync() => ValueTask.CompletedTask;
}

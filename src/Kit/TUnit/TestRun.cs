using System.Reflection;
using Linq2DbTestKit.Internal;
using TUnit.Core;

namespace Linq2DbTestKit.TUnit;

/// <summary>
/// The set-up of a test assembly's run: derive one class from it in the test project, naming the provider. When TUnit's
/// session starts, it checks the server and creates the run's database, then lets
/// <see cref="PrepareDatabaseAsync"/> apply the schema once and records what every table holds; when TUnit's session
/// ends it compares every table with that, failing the session when anything persisted, and drops the database.
/// </summary>
/// <remarks>
/// The kit finds the class in the test project when TUnit's session starts (or, where the project is not the process's
/// entry assembly, in the assembly of the first <see cref="DatabaseTest"/>); it needs a constructor without parameters. When <see cref="TestKitEnvironment.ProviderVariable"/> selects another provider, every
/// <see cref="DatabaseTest"/> is reported as skipped, with the reason and the variables to set. When the server cannot be
/// reached or the preparation fails, every <see cref="DatabaseTest"/> fails with that message. The run's lines
/// (<c>linq2db-testkit: …</c>) go to the standard output of the test process.
/// </remarks>
/// <example>
/// <code>
/// public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance)
/// {
///     protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) =>
///         Migrations.ApplyAsync(database, cancellationToken);
/// }
/// </code>
/// </example>
public abstract class TestRun
{
    static readonly Lock Gate = new();
    static Task<TestRun>? started;
    static TestRun? current;

    readonly DatabaseProvider _provider;
    TestDatabase? _database;
    string? _skipReason;

    /// <summary>Creates the run for <paramref name="provider"/>.</summary>
    protected TestRun(DatabaseProvider provider) => _provider = provider ?? throw new ArgumentNullException(nameof(provider));

    /// <summary>The database of the running test assembly.</summary>
    /// <exception cref="InvalidOperationException">The test project has no class derived from <see cref="TestRun"/>, or the run's start failed.</exception>
    public static TestDatabase Database
    {
        get
        {
            if (current?._database is { } database)
                return database;

            Task<TestRun>? start;
            lock (Gate)
                start = started;
            throw new InvalidOperationException(start?.Exception?.GetBaseException() is { } failure
                ? $"The run's database could not be prepared: {failure.Message}"
                : current?._skipReason is { } skipped
                    ? $"The run has no database: {skipped}"
                    : "The run's database is not ready: the kit creates it when TUnit's session starts, from the class of the test project derived from " +
                      "Linq2DbTestKit.TUnit.TestRun (public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance);).");
        }
    }

    /// <summary>Why the run's tests are skipped; <see langword="null"/> when they run.</summary>
    internal string? SkipReason => _skipReason;

    /// <summary>The run of <paramref name="testAssembly"/>, started by the first test that asks; its failure, to every test that asks.</summary>
    internal static Task<TestRun> StartedAsync(Assembly testAssembly)
    {
        lock (Gate)
            return started ??= Task.Run(() => StartAsync(testAssembly));
    }

    static async Task<TestRun> StartAsync(Assembly testAssembly)
    {
        var run = Create(testAssembly);
        run._skipReason = TestKitEnvironment.SkipReason(run._provider);
        current = run;
        if (run._skipReason is not null)
        {
            Progress(run._skipReason);
            return run;
        }

        var options = await run.CreateOptionsAsync(CancellationToken.None).ConfigureAwait(false);
        await RunLifecycle.StartAsync(run._provider, options, run.GetType(), run.SchemaInputs, run.PrepareDatabaseAsync,
            RunLifecycle.AnyMarked(testAssembly, typeof(RealCommitsAttribute)), database => run._database = database, Progress, CancellationToken.None).ConfigureAwait(false);
        return run;
    }

    static TestRun Create(Assembly testAssembly)
    {
        var runs = RunLifecycle.ConcreteTypes(testAssembly, typeof(TestRun));
        if (runs.Count != 1)
        {
            throw new TestKitConfigurationException(runs.Count == 0
                ? $"{testAssembly.GetName().Name} has tests derived from DatabaseTest but no class derived from Linq2DbTestKit.TUnit.TestRun, which names the " +
                  "provider and prepares the run's database: add public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance);"
                : $"{testAssembly.GetName().Name} has {runs.Count} classes derived from TestRun ({string.Join(", ", runs.Select(t => t.FullName))}): keep one.");
        }

        return (TestRun)(Activator.CreateInstance(runs[0], nonPublic: true)
                         ?? throw new TestKitConfigurationException($"{runs[0].FullName} could not be created: give it a constructor without parameters."));
    }

    /// <summary>
    /// Starts the run of the test project, when it has a class derived from <see cref="TestRun"/>: TUnit runs it once,
    /// before the first test. A failure is kept, and every <see cref="DatabaseTest"/> fails with it.
    /// </summary>
    [Before(TestSession)]
    public static async Task StartRunAsync()
    {
        if (System.Reflection.Assembly.GetEntryAssembly() is not { } testAssembly || RunLifecycle.ConcreteTypes(testAssembly, typeof(TestRun)).Count == 0)
            return;

        try
        {
            await StartedAsync(testAssembly).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // Kept in the start's task: each test that needs the database fails with it, in its own result.
        }
    }

    /// <summary>
    /// Compares every table with its prepared state, then drops the run's database, unless it is to be kept. TUnit runs it
    /// once, when its session ends; it fails the session (and the exit code) when anything the tests did persisted.
    /// </summary>
    [After(TestSession)]
    public static async Task EndRunAsync()
    {
        Task<TestRun>? start;
        lock (Gate)
            start = started;
        if (start is null || !start.IsCompletedSuccessfully)
            return;

        var run = start.Result;
        await run.StopAsync().ConfigureAwait(false);
        var database = Interlocked.Exchange(ref run._database, null);
        if (database is null)
            return;

        var failure = await RunLifecycle.EndAsync(database, Progress, whereClassesAreNamed: null).ConfigureAwait(false);
        if (failure is not null)
            throw new TestScopeException(failure);
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

    /// <summary>Runs when the session ends, before the run's check and the drop of its database: stop an application started on it here.</summary>
    protected virtual ValueTask StopAsync() => ValueTask.CompletedTask;
}

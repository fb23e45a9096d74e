using NUnit.Framework;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The set-up of a test assembly's run: derive a <c>[SetUpFixture]</c> from it, outside any namespace, naming the provider.
/// Before the first test it checks the server and creates the run's database, then lets <see cref="PrepareDatabaseAsync"/>
/// apply the schema once; after the last test it drops the database.
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
        "This test assembly has no database: add a [SetUpFixture] derived from Linq2DbTestKit.NUnit.TestRun, outside any namespace, " +
        "so that it runs before every test: [SetUpFixture] public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance);");

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

        if (Interlocked.CompareExchange(ref current, this, null) is { } other)
            throw new InvalidOperationException($"This test assembly has two test runs, {other.GetType()} and {GetType()}: keep one [SetUpFixture] derived from TestRun.");

        var options = await CreateOptionsAsync(TestContext.CurrentContext.CancellationToken).ConfigureAwait(false);
        _database = await TestDatabase.CreateAsync(_provider, options).ConfigureAwait(false);
        await TestContext.Progress.WriteLineAsync($"linq2db-testkit: this run uses {_database}").ConfigureAwait(false);
        try
        {
            await PrepareDatabaseAsync(_database, TestContext.CurrentContext.CancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await EndRunAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Drops the run's database, unless it is to be kept. Runs once, after the last test.</summary>
    [OneTimeTearDown]
    public async Task EndRunAsync()
    {
        var database = Interlocked.Exchange(ref _database, null);
        if (database is null)
            return;

        Interlocked.CompareExchange(ref current, null, this);
        await database.DisposeAsync().ConfigureAwait(false);
        if (database.KeepsDatabase)
            await TestContext.Progress.WriteLineAsync($"linq2db-testkit: kept {database}").ConfigureAwait(false);
    }

    /// <summary>
    /// The options of the run's database; by default, those of the environment variables. Override it to start a server
    /// first (a container, a local cluster) and return its connection string.
    /// </summary>
    protected virtual Task<TestDatabaseOptions> CreateOptionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(TestDatabaseOptions.FromEnvironment(_provider));

    /// <summary>Applies the schema to the new database (run the project's migrations here). Runs once, before the first test.</summary>
    protected virtual Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken) => Task.CompletedTask;
}

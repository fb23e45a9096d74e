using LinqToDB.Data;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The base of a test class whose tests each run in their own <see cref="TestScope"/>: a connection and an outer
/// transaction, begun before the test's own <c>[SetUp]</c> and rolled back after its <c>[TearDown]</c>, whether the test
/// passes, fails or throws. When a test fails, the SQL it ran appears in its output.
/// </summary>
/// <remarks>
/// Each test gets a fresh instance of the class (<see cref="LifeCycle.InstancePerTestCase"/>), so tests of one class can
/// run in parallel, each with its own scope. Mark the class <c>[Parallelizable(ParallelScope.All)]</c> to let them.
/// </remarks>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public abstract class DatabaseTest
{
    TestScope? _scope;

    /// <summary>The running test's scope.</summary>
    /// <exception cref="InvalidOperationException">Used outside a test, before its set-up or after its tear-down.</exception>
    protected TestScope Scope => _scope ?? throw new InvalidOperationException(
        "The test scope exists only while a test runs, from the kit's [SetUp] to its [TearDown]; it is not available in [OneTimeSetUp], " +
        "constructors or static members.");

    /// <summary>A ready <see cref="DataConnection"/> on the running test's scope.</summary>
    protected DataConnection Db => Scope.Db;

    /// <summary>Begins the test's scope. Runs before the test class's own <c>[SetUp]</c> methods.</summary>
    [SetUp]
    public async Task BeginTestScopeAsync() => _scope = await TestRun.Database.BeginScopeAsync().ConfigureAwait(false);

    /// <summary>
    /// Rolls the test's scope back and, when the test failed, writes the SQL it ran to the test's output. Fails the test
    /// when code bypassed the scope with a connection of its own (<see cref="TestScope.FindBypassingSessionsAsync"/>).
    /// </summary>
    [TearDown]
    public async Task EndTestScopeAsync()
    {
        var scope = Interlocked.Exchange(ref _scope, null);
        if (scope is null)
            return;

        IReadOnlyList<string> bypassing = [];
        try
        {
            bypassing = await scope.FindBypassingSessionsAsync().ConfigureAwait(false);
        }
        finally
        {
            await scope.DisposeAsync().ConfigureAwait(false);
        }

        var failed = TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed;
        if (failed || bypassing.Count > 0)
            await TestContext.Out.WriteLineAsync($"SQL of {scope}:\n{scope.Trace}").ConfigureAwait(false);
        if (bypassing.Count > 0)
        {
            var message = "While this test ran, code connected to the run's database with TestRun.Database.ConnectionString instead of using the test's scope " +
                          $"(application name {TestDatabase.UnscopedApplicationName}); what it wrote is committed and outlives the test. Build contexts from Scope.Options " +
                          $"and connections from Scope.OpenConnection(), or bind the application with WithTestScopes(). Sessions:\n  {string.Join("\n  ", bypassing)}";
            if (failed)
                await TestContext.Out.WriteLineAsync(message).ConfigureAwait(false);
            else
                Assert.Fail(message);
        }
    }
}

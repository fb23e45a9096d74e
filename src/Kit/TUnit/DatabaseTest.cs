using Linq2DbTestKit.Internal;
using LinqToDB.Data;
using TUnit.Core;

namespace Linq2DbTestKit.TUnit;

/// <summary>
/// The base of a test class whose tests each run in their own <see cref="TestScope"/>: a connection and an outer
/// transaction, begun before the test and rolled back after it, whether it passes, fails or throws. When a test fails,
/// the SQL it ran appears in its output.
/// </summary>
/// <remarks>
/// <para>
/// The scope begins in a <c>[Before(Test)]</c> hook, which hands it to the test's flow
/// (TUnit's <c>AddAsyncLocalValues</c>): it is <see cref="TestScope.Current"/> in the test and in the derived
/// class's own <c>[Before(Test)]</c> and <c>[After(Test)]</c> hooks. linq2db contexts that the test or the code under test
/// builds itself — <c>new AppDb()</c>, <c>new AppDb("Name")</c>, <c>new AppDb(connectionString)</c> — join it when they
/// connect to the run's database, as do contexts built from <see cref="TestScope.Options"/>.
/// </para>
/// <para>
/// A test fails when code in its flow ran statements on a connection of its own to the run's database
/// (<see cref="TestScope.Bypasses"/>). TUnit runs tests in parallel, each with its own scope.
/// </para>
/// </remarks>
public abstract class DatabaseTest
{
    TestScope? _scope;
    RealCommitSession? _session;

    /// <summary>The running test's scope.</summary>
    /// <exception cref="InvalidOperationException">The test is marked <see cref="RealCommitsAttribute"/>, and has none.</exception>
    protected TestScope Scope => _scope ?? throw new InvalidOperationException(_session is null
        ? "The test's scope has not begun: it begins in DatabaseTest's [Before(Test)] hook, after the class's constructor."
        : ScopedTest.NoScopeInRealCommits(_session));

    /// <summary>
    /// A ready <see cref="DataConnection"/>: on the running test's scope, or in a <see cref="RealCommitsAttribute"/> test,
    /// on the run's database, where what it commits stays until the test ends.
    /// </summary>
    protected DataConnection Db => _session?.Db ?? Scope.Db;

    /// <summary>The running <see cref="RealCommitsAttribute"/> test's session.</summary>
    /// <exception cref="InvalidOperationException">The running test is not marked <see cref="RealCommitsAttribute"/>.</exception>
    protected RealCommitSession RealCommits => _session ?? throw new InvalidOperationException(
        ScopedTest.NoRealCommitsInScope);

    /// <summary>Starts the run on the first test; begins the test's scope (or its real-commit session) and hands it to the test's flow.</summary>
    [Before(Test)]
    public async Task BeginTestScopeAsync(TestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var run = await TestRun.StartedAsync(GetType().Assembly).ConfigureAwait(false);
        if (run.SkipReason is { } reason)
            Skip.Test(reason);

        if (context.Metadata.TestDetails.HasAttribute<RealCommitsAttribute>())
            _session = ScopedTest.BeginRealCommits(TestRun.Database);
        else
            _scope = ScopedTest.Begin(TestRun.Database);
        context.AddAsyncLocalValues();
    }

    /// <summary>
    /// Rolls back the test's scope (or resets what its real-commit session committed); fails the test with what went
    /// wrong — a bypass, a divergence from production, a transaction the code left ended — beside its own failure.
    /// </summary>
    [After(Test)]
    public Task EndTestScopeAsync(TestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        string? problem = null;
        if (Interlocked.Exchange(ref _session, null) is { } session)
        {
            problem = ScopedTest.EndRealCommits(session);
            if (session.RestoredTables.Count > 0)
                context.Output.WriteLine($"linq2db-testkit: the reset after this real-commit test restored {string.Join(", ", session.RestoredTables)}");
        }
        else if (Interlocked.Exchange(ref _scope, null) is { } scope)
        {
            problem = ScopedTest.End(scope);
            if (problem is not null || context.Execution.Result?.State == TestState.Failed)
                context.Output.WriteLine($"SQL of {scope}:\n{scope.Trace}");
        }

        return problem is null ? Task.CompletedTask : Task.FromException(new TestScopeException(problem));
    }
}

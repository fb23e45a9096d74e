using System.Reflection;
using Linq2DbTestKit.Internal;
using LinqToDB.Data;

namespace Linq2DbTestKit.Xunit;

/// <summary>
/// The base of a test class whose tests each run in their own <see cref="TestScope"/>: a connection and an outer
/// transaction, begun when xUnit constructs the class for the test and rolled back when it disposes it, whether the test
/// passes, fails or throws. When a test fails, the SQL it ran appears in its output.
/// </summary>
/// <remarks>
/// <para>
/// The scope begins in this constructor and is <see cref="TestScope.Current"/> from there in the test's flow: in the
/// derived class's constructor, its <see cref="InitializeAsync"/>, the test and <see cref="DisposeAsync"/>. linq2db
/// contexts that the test or the code under test builds itself — <c>new AppDb()</c>, <c>new AppDb("Name")</c>,
/// <c>new AppDb(connectionString)</c> — join it when they connect to the run's database, as do contexts built from
/// <see cref="TestScope.Options"/>.
/// </para>
/// <para>
/// A test fails when code in its flow ran statements on a connection of its own to the run's database
/// (<see cref="TestScope.Bypasses"/>). xUnit runs the classes of an assembly in parallel, each with its own scopes; a
/// derived class that overrides <see cref="DisposeAsync"/> calls the base's last.
/// </para>
/// </remarks>
public abstract class DatabaseTest : global::Xunit.IAsyncLifetime
{
    readonly TestScope? _scope;
    readonly RealCommitSession? _session;
    int _ended;

    /// <summary>Begins the test's scope, or its real-commit session when the test is marked <see cref="RealCommitsAttribute"/>.</summary>
    protected DatabaseTest()
    {
        if (TestRun.SkipReason is { } reason)
            throw new SkippedTest(reason);

        var method = (global::Xunit.TestContext.Current.TestMethod as global::Xunit.v3.IXunitTestMethod)?.Method;
        if (RealCommitsAttribute.AppliesTo(GetType(), method))
            _session = ScopedTest.BeginRealCommits(TestRun.Database);
        else
            _scope = ScopedTest.Begin(TestRun.Database);
    }

    /// <summary>The running test's scope.</summary>
    /// <exception cref="InvalidOperationException">The test is marked <see cref="RealCommitsAttribute"/>, and has none.</exception>
    protected TestScope Scope => _scope ?? throw new InvalidOperationException(
        ScopedTest.NoScopeInRealCommits(_session!));

    /// <summary>
    /// A ready <see cref="DataConnection"/>: on the running test's scope, or in a <see cref="RealCommitsAttribute"/> test,
    /// on the run's database, where what it commits stays until the test ends.
    /// </summary>
    protected DataConnection Db => _session?.Db ?? Scope.Db;

    /// <summary>The running <see cref="RealCommitsAttribute"/> test's session.</summary>
    /// <exception cref="InvalidOperationException">The running test is not marked <see cref="RealCommitsAttribute"/>.</exception>
    protected RealCommitSession RealCommits => _session ?? throw new InvalidOperationException(
        ScopedTest.NoRealCommitsInScope);

    /// <summary>Runs after the constructor, in the test's scope. Override it for asynchronous set-up.</summary>
    public virtual ValueTask InitializeAsync() => ValueTask.CompletedTask;

    /// <summary>
    /// Rolls back the test's scope (or resets what its real-commit session committed); fails the test with what went
    /// wrong — a bypass, a divergence from production, a transaction the code left ended — added to its own failure.
    /// </summary>
    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        if (Interlocked.Exchange(ref _ended, 1) == 1)
            return ValueTask.CompletedTask;

        var context = global::Xunit.TestContext.Current;
        string? problem;
        if (_session is not null)
        {
            problem = ScopedTest.EndRealCommits(_session);
            if (_session.RestoredTables.Count > 0)
                context.TestOutputHelper?.WriteLine($"linq2db-testkit: the reset after this real-commit test restored {string.Join(", ", _session.RestoredTables)}");
        }
        else
        {
            problem = ScopedTest.End(_scope!);
            if (problem is not null || context.TestState?.Result == global::Xunit.TestResult.Failed)
                context.TestOutputHelper?.WriteLine($"SQL of {_scope}:\n{_scope!.Trace}");
        }

        return problem is null ? ValueTask.CompletedTask : ValueTask.FromException(new TestScopeException(problem));
    }

    /// <summary>xUnit reports a test whose exception's message begins with its dynamic-skip token as skipped.</summary>
    sealed class SkippedTest(string reason) : Exception(global::Xunit.v3.DynamicSkipToken.Value + reason);
}

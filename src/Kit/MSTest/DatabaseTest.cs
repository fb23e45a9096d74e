using System.Reflection;
using Linq2DbTestKit.Internal;
using LinqToDB.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Linq2DbTestKit.MSTest;

/// <summary>
/// The base of a test class whose tests each run in their own <see cref="TestScope"/>: a connection and an outer
/// transaction, begun before the test and rolled back after it, whether it passes, fails or throws. When a test fails,
/// the SQL it ran appears in its output.
/// </summary>
/// <remarks>
/// <para>
/// The scope begins in a synchronous <c>[TestInitialize]</c>, whose flow MSTest hands on to the test: it is
/// <see cref="TestScope.Current"/> in the test and in the derived class's own <c>[TestInitialize]</c> and
/// <c>[TestCleanup]</c> methods. linq2db contexts that the test or the code under test builds itself — <c>new AppDb()</c>,
/// <c>new AppDb("Name")</c>, <c>new AppDb(connectionString)</c> — join it when they connect to the run's database, as do
/// contexts built from <see cref="TestScope.Options"/>.
/// </para>
/// <para>
/// A test fails when code in its flow ran statements on a connection of its own to the run's database
/// (<see cref="TestScope.Bypasses"/>). With <c>[assembly: Parallelize]</c>, tests run in parallel, each with its own scope.
/// </para>
/// </remarks>
public abstract class DatabaseTest
{
    static readonly System.Collections.Concurrent.ConcurrentDictionary<(Type Class, string? Test), bool> Marked = new();

    TestScope? _scope;
    RealCommitSession? _session;

    /// <summary>MSTest's context of the running test; MSTest sets it.</summary>
    public TestContext TestContext { get; set; } = null!;

    /// <summary>The running test's scope.</summary>
    /// <exception cref="InvalidOperationException">The test is marked <see cref="RealCommitsAttribute"/>, and has none.</exception>
    protected TestScope Scope => _scope ?? throw new InvalidOperationException(_session is null
        ? "The test's scope has not begun: it begins in DatabaseTest's [TestInitialize], after the class's constructor."
        : ScopedTest.NoScopeInRealCommits(_session, "DatabaseRun"));

    /// <summary>
    /// A ready <see cref="DataConnection"/>: on the running test's scope, or in a <see cref="RealCommitsAttribute"/> test,
    /// on the run's database, where what it commits stays until the test ends.
    /// </summary>
    protected DataConnection Db => _session?.Db ?? Scope.Db;

    /// <summary>The running <see cref="RealCommitsAttribute"/> test's session.</summary>
    /// <exception cref="InvalidOperationException">The running test is not marked <see cref="RealCommitsAttribute"/>.</exception>
    protected RealCommitSession RealCommits => _session ?? throw new InvalidOperationException(
        ScopedTest.NoRealCommitsInScope);

    /// <summary>
    /// Begins the test's scope (or its real-commit session). Synchronous on purpose: MSTest hands the flow of a synchronous
    /// <c>[TestInitialize]</c> on to the test, not that of an asynchronous one.
    /// </summary>
    [TestInitialize]
    public void BeginTestScope()
    {
        if (DatabaseRun.SkipReason is { } reason)
            Assert.Inconclusive(reason);

        if (MarkedRealCommits())
            _session = ScopedTest.BeginRealCommits(DatabaseRun.Database);
        else
            _scope = ScopedTest.Begin(DatabaseRun.Database);
    }

    /// <summary>
    /// Rolls back the test's scope (or resets what its real-commit session committed); fails the test with what went
    /// wrong — a bypass, a divergence from production, a transaction the code left ended — beside its own failure.
    /// </summary>
    [TestCleanup]
    public void EndTestScope()
    {
        string? problem = null;
        if (Interlocked.Exchange(ref _session, null) is { } session)
        {
            problem = ScopedTest.EndRealCommits(session);
            if (session.RestoredTables.Count > 0)
                TestContext?.WriteLine($"linq2db-testkit: the reset after this real-commit test restored {string.Join(", ", session.RestoredTables)}");
        }
        else if (Interlocked.Exchange(ref _scope, null) is { } scope)
        {
            problem = ScopedTest.End(scope);
            if (problem is not null || TestContext?.CurrentTestOutcome is not (null or UnitTestOutcome.Passed))
                TestContext?.WriteLine($"SQL of {scope}:\n{scope.Trace}");
        }

        if (problem is not null)
            throw new TestScopeException(problem);
    }

    /// <summary>Whether the running test or its class is marked; asked before every test, so the answer is kept per class and test name.</summary>
    bool MarkedRealCommits() =>
        Marked.GetOrAdd((GetType(), TestContext?.TestName), static key =>
            key.Class.IsDefined(typeof(RealCommitsAttribute), inherit: true)
            || (key.Test is { } name && key.Class.GetMethods(BindingFlags.Public | BindingFlags.Instance)
                .Any(method => method.Name == name && method.IsDefined(typeof(RealCommitsAttribute), inherit: true))));
}

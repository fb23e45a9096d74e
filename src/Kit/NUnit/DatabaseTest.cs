using Linq2DbTestKit.Internal;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The base of a test class whose tests each run in their own <see cref="TestScope"/>: a connection and an outer
/// transaction, begun before the test's own <c>[SetUp]</c> and rolled back after its <c>[TearDown]</c>, whether the test
/// passes, fails or throws. When a test fails, the SQL it ran appears in its output.
/// </summary>
/// <remarks>
/// <para>
/// The scope is <see cref="TestScope.Current"/> in the test's flow: linq2db contexts that the test or the code under test
/// builds itself — <c>new AppDb()</c>, <c>new AppDb("Name")</c>, <c>new AppDb(connectionString)</c> — join it when they
/// connect to the run's database, as do contexts built from <see cref="TestScope.Options"/>.
/// </para>
/// <para>
/// A test fails when code in its flow ran statements on a connection of its own to the run's database
/// (<see cref="TestScope.Bypasses"/>): the message says whether it wrote, only read, or failed.
/// </para>
/// <para>
/// Tests of one class can run in parallel (<c>[Parallelizable(ParallelScope.All)]</c>), each with its own scope. NUnit
/// shares one instance of the class between them unless the class also says
/// <c>[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]</c>: add that when tests keep state in fields.
/// </para>
/// </remarks>
[TestScopePerTest]
public abstract class DatabaseTest
{
    /// <summary>The running test's scope.</summary>
    /// <exception cref="InvalidOperationException">Used outside a test: in <c>[OneTimeSetUp]</c>, a constructor or a static member.</exception>
    protected TestScope Scope => TestScope.Current ?? throw (RealCommitSession.Current is { } session
        ? new InvalidOperationException(
            ScopedTest.NoScopeInRealCommits(session))
        : new InvalidOperationException(
            "The test scope exists only while a test runs, from before its [SetUp] to after its [TearDown], and only in the test's own flow; " +
            "it is not available in [OneTimeSetUp], constructors, static members, or code started with ExecutionContext.SuppressFlow."));

    /// <summary>
    /// A ready <see cref="DataConnection"/>: on the running test's scope, or in a <see cref="RealCommitsAttribute"/> test,
    /// on the run's database, where what it commits stays until the test ends.
    /// </summary>
    protected DataConnection Db => RealCommitSession.Current?.Db ?? Scope.Db;

    /// <summary>The running <see cref="RealCommitsAttribute"/> test's session.</summary>
    /// <exception cref="InvalidOperationException">The running test is not marked <see cref="RealCommitsAttribute"/>.</exception>
    protected RealCommitSession RealCommits => RealCommitSession.Current ?? throw new InvalidOperationException(
        ScopedTest.NoRealCommitsInScope);
}

using System.Collections.Concurrent;
using Linq2DbTestKit.Internal;
using NUnit.Framework;
using NUnit.Framework.Interfaces;
using NUnit.Framework.Internal;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// Gives each test of a class its own <see cref="TestScope"/>, current in the test's flow from before its
/// <c>[SetUp]</c> to after its <c>[TearDown]</c>; after the class, looks for data that persisted.
/// </summary>
/// <remarks>
/// An action on the class runs around the test's set-up, body and tear-down, synchronously and in the same execution
/// context: a scope made current here is current in all three, and in whatever they start. A scope made current in an
/// async <c>[SetUp]</c> would not be: its execution context ends with it.
/// </remarks>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
internal sealed class TestScopePerTestAttribute : Attribute, ITestAction
{
    static readonly ConcurrentDictionary<string, TestScope> Scopes = new(StringComparer.Ordinal);
    static readonly ConcurrentDictionary<string, RealCommitSession> Sessions = new(StringComparer.Ordinal);

    public ActionTargets Targets => ActionTargets.Test | ActionTargets.Suite;

    public void BeforeTest(ITest test)
    {
        if (test.IsSuite)
            return;

        if (test.Fixture is SeededDatabaseTest seeded)
        {
            if (RealCommitsAttribute.AppliesTo(test))
            {
                Assert.Fail($"{test.Name} is marked [RealCommits], but its class shares a seed ({nameof(SeededDatabaseTest)}): the test would wait for the class's " +
                            "transaction forever. Move it to a class derived from DatabaseTest.");
            }

            Scopes[test.Id] = SharedSeeds.BeginTest(test, seeded);
        }
        else if (RealCommitsAttribute.AppliesTo(test))
        {
            Sessions[test.Id] = ScopedTest.BeginRealCommits(TestRun.Database);
        }
        else
        {
            Scopes[test.Id] = ScopedTest.Begin(TestRun.Database);
        }
    }

    public void AfterTest(ITest test)
    {
        if (test.IsSuite)
        {
            // A failure here would not reach NUnit's results; the class check reports, and the run's end fails.
            SharedSeeds.EndClass(test);
            TestRun.CheckAfterClass(test.FullName);
            return;
        }

        if (Sessions.TryRemove(test.Id, out var session))
        {
            var failure = ScopedTest.EndRealCommits(session);
            if (session.RestoredTables.Count > 0)
                TestContext.Out.WriteLine($"linq2db-testkit: the reset after this real-commit test restored {string.Join(", ", session.RestoredTables)}");
            if (failure is not null)
                Fail(failure);
            return;
        }

        if (!Scopes.TryRemove(test.Id, out var scope))
            return;

        string? problems;
        try
        {
            problems = ScopedTest.End(scope);
        }
        finally
        {
            SharedSeeds.EndTest(test);
        }

        var failed = TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed;
        if (failed || problems is not null)
            TestContext.Out.WriteLine($"SQL of {scope}:\n{scope.Trace}");
        if (problems is not null)
            Fail(problems);
    }

    /// <summary>
    /// Fails the test with <paramref name="problem"/>; a test that failed already keeps its failure, and the problem is
    /// added to it (NUnit 4 would replace it with an assertion made now).
    /// </summary>
    static void Fail(string problem)
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed)
            TestExecutionContext.CurrentContext.CurrentResult.RecordTearDownException(new TestScopeException(problem));
        else
            Assert.Fail(problem);
    }
}

using System.Collections.Concurrent;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

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

    public ActionTargets Targets => ActionTargets.Test | ActionTargets.Suite;

    public void BeforeTest(ITest test)
    {
        if (test.IsSuite)
            return;

        var scope = TestRun.Database.BeginScope();
        Scopes[test.Id] = scope;
        TestScope.SetCurrent(scope);
    }

    public void AfterTest(ITest test)
    {
        if (test.IsSuite)
        {
            // A failure here would not reach NUnit's results; the class check reports, and the run's end fails.
            TestRun.CheckAfterClass(test.FullName);
            return;
        }

        if (!Scopes.TryRemove(test.Id, out var scope))
            return;

        TestScope.SetCurrent(null);
        Exception? ending = null;
        try
        {
            scope.Dispose();
        }
        catch (Exception exception)
        {
            ending = exception;
        }

        var failed = TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed;
        var bypass = BypassMessage(scope);
        if (failed || bypass is not null || ending is not null)
            TestContext.Out.WriteLine($"SQL of {scope}:\n{scope.Trace}");

        var problems = new[] { ending?.Message, bypass }.Where(message => message is not null).ToArray();
        if (problems.Length == 0)
            return;

        var message = string.Join("\n\n", problems);
        if (failed)
            TestContext.Out.WriteLine(message);
        else
            Assert.Fail(message);
    }

    static string? BypassMessage(TestScope scope)
    {
        var statements = scope.BypassStatements;
        if (statements.Count == 0)
            return null;

        var wrote = statements.Any(s => s.Error is null && s.Writes);
        var outcome = wrote
            ? "What it wrote is committed and outlives the test."
            : statements.Any(s => s.Error is null)
                ? "It only read: it saw the database as committed, without what this test wrote in its scope, and wrote nothing."
                : "Its statements failed, so they committed nothing; a lock wait that timed out means the test's scope held the row it wanted.";
        return $"While this test ran, code in it connected to the run's database with TestRun.Database.ConnectionString (application name " +
               $"{TestDatabase.UnscopedApplicationName}) instead of joining {scope}. {outcome} Build linq2db contexts inside the test (they join its scope), " +
               "use Scope.OpenConnection() for raw ADO.NET, and send requests with factory.CreateClient(Scope). Statements:\n  " +
               string.Join("\n  ", scope.Bypasses);
    }
}

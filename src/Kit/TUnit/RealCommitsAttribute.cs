using TUnit.Core;
using TUnit.Core.Interfaces;

namespace Linq2DbTestKit.TUnit;

/// <summary>
/// Marks a test (or every test of a class) of a <see cref="DatabaseTest"/> class that commits for real instead of
/// running in a rolled-back scope: <c>NOTIFY</c>/<c>LISTEN</c>, sessions that must see each other's commits, background
/// workers, code that opens its own connections, time that passes between transactions.
/// </summary>
/// <remarks>
/// The test runs in a <see cref="RealCommitSession"/>: its code connects with <c>TestRun.Database.ConnectionString</c>
/// (or uses <see cref="DatabaseTest.Db"/>), and what it commits stays until the test ends. Then the kit returns what it
/// changed to the run's prepared state. Such a test runs alone: the kit makes it wait until every open scope has ended,
/// and makes scopes of tests running beside it wait while it runs.
/// </remarks>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class RealCommitsAttribute : Attribute, ITestStartEventReceiver
{
    /// <summary>Fails a test whose class gives it no session: it would commit for real with nothing to reset it.</summary>
    public ValueTask OnTestStart(TestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var testClass = context.Metadata.TestDetails.ClassType;
        if (!typeof(DatabaseTest).IsAssignableFrom(testClass))
        {
            throw new InvalidOperationException(
                $"{context.Metadata.TestName} is marked [RealCommits], but its class {testClass.Name} does not derive from {nameof(DatabaseTest)}: nothing " +
                $"would begin its real-commit session or reset what it commits, and scopes of other tests would run beside it. Derive the class from {nameof(DatabaseTest)}, " +
                "or begin a session yourself with TestRun.Database.BeginRealCommitsAsync() and dispose it at the test's end.");
        }

        return ValueTask.CompletedTask;
    }
}

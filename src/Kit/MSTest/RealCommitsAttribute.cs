namespace Linq2DbTestKit.MSTest;

/// <summary>
/// Marks a test (or every test of a class) of a <see cref="DatabaseTest"/> class that commits for real instead of
/// running in a rolled-back scope: <c>NOTIFY</c>/<c>LISTEN</c>, sessions that must see each other's commits, background
/// workers, code that opens its own connections, time that passes between transactions.
/// </summary>
/// <remarks>
/// The test runs in a <see cref="RealCommitSession"/>: its code connects with <c>DatabaseRun.Database.ConnectionString</c>
/// (or uses <see cref="DatabaseTest.Db"/>), and what it commits stays until the test ends. Then the kit returns what it
/// changed to the run's prepared state. Such a test runs alone: the kit makes it wait until every open scope has ended,
/// and makes scopes of tests running beside it wait while it runs. The run refuses to start when a
/// test so marked is in a class that does not derive from <see cref="DatabaseTest"/>.
/// </remarks>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class RealCommitsAttribute : Attribute;

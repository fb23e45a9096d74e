using System.Reflection;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// Marks a test (or every test of a class) of a <see cref="DatabaseTest"/> class that commits for real instead of
/// running in a rolled-back scope: <c>NOTIFY</c>/<c>LISTEN</c>, sessions that must see each other's commits, background
/// workers, code that opens its own connections, time that passes between transactions.
/// </summary>
/// <remarks>
/// <para>
/// The test runs in a <see cref="RealCommitSession"/>: its code connects with <c>TestRun.Database.ConnectionString</c>
/// (or uses <see cref="DatabaseTest.Db"/>), and what it commits stays until the test ends. Then the kit returns every
/// table it changed, and their sequences, to the run's prepared state, at a cost that grows with what the test
/// changed, not with the number of tables.
/// </para>
/// <para>
/// Such a test runs alone: NUnit does not run it in parallel with other tests (this attribute is
/// <c>[NonParallelizable]</c>), and the kit makes it wait until every open scope has ended, and makes scopes wait while
/// it runs, whatever the test framework does.
/// </para>
/// </remarks>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class RealCommitsAttribute() : ParallelizableAttribute(ParallelScope.None)
{
    internal static bool AppliesTo(ITest test) =>
        test.Method?.GetCustomAttributes<RealCommitsAttribute>(inherit: true).Length > 0
        || test.TypeInfo?.Type.GetCustomAttribute<RealCommitsAttribute>(inherit: true) is not null;
}

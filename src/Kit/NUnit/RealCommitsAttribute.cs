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
/// <para>
/// Because it is not parallelizable, NUnit runs it after the parallel tests of its class, whatever their
/// <c>[Order]</c>: a class that orders its tests should not mark some of them <c>[RealCommits]</c>; the kit says so in
/// the run's output when one does.
/// </para>
/// </remarks>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class RealCommitsAttribute() : ParallelizableAttribute(ParallelScope.None), ITestAction
{
    static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, bool> Warned = new();

    static readonly System.Collections.Concurrent.ConcurrentDictionary<(Type? Class, MethodInfo? Method), bool> Marked = new();

    /// <summary>Whether the test or its class is marked; asked before every test, so the answer is kept per class and method.</summary>
    internal static bool AppliesTo(ITest test) =>
        Marked.GetOrAdd((test.TypeInfo?.Type, test.Method?.MethodInfo), static key =>
            key.Method?.IsDefined(typeof(RealCommitsAttribute), inherit: true) == true
            || key.Class?.IsDefined(typeof(RealCommitsAttribute), inherit: true) == true);

    ActionTargets ITestAction.Targets => ActionTargets.Test;

    /// <summary>Fails a test whose class gives it no session (it would commit for real with nothing to reset it), and warns of <c>[Order]</c>.</summary>
    void ITestAction.BeforeTest(ITest test)
    {
        if (test.Fixture is not DatabaseTest)
        {
            Assert.Fail($"{test.Name} is marked [RealCommits], but its class {test.TypeInfo?.Type.Name} does not derive from {nameof(DatabaseTest)}: nothing would " +
                        "begin its real-commit session or reset what it commits, and scopes of other tests would run beside it. Derive the class from " +
                        $"{nameof(DatabaseTest)}, or begin a session yourself with TestRun.Database.BeginRealCommitsAsync() and dispose it at the test's end.");
        }

        if (test.TypeInfo?.Type is { } type
            && type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static).Any(m => m.IsDefined(typeof(OrderAttribute), inherit: true))
            && Warned.TryAdd(type, true))
        {
            TestContext.Progress.WriteLine(
                $"linq2db-testkit: {type.Name} orders its tests with [Order] and marks some [RealCommits]: NUnit runs those after the class's parallel tests, " +
                "out of that order. Move the real-commit tests to a class of their own.");
        }
    }

    void ITestAction.AfterTest(ITest test)
    {
    }
}

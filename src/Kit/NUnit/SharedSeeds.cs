using System.Collections.Concurrent;
using Linq2DbTestKit.Internal;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The class scopes of <see cref="SeededDatabaseTest"/> classes: begun and seeded at the class's first test, one
/// nested scope per test on top of it, rolled back after the class's last test.
/// </summary>
/// <remarks>
/// NUnit runs such a class's tests one after another on the class's own worker (<see cref="SeededDatabaseTest"/> is
/// <c>[SingleThreaded]</c>), so the kit never makes a worker wait for a turn that only another queued test could give:
/// a class holds its worker from its first test to its last, and another class that waits for its rows waits for
/// something that is running.
/// </remarks>
internal static class SharedSeeds
{
    static readonly ConcurrentDictionary<string, ClassSeed> Classes = new(StringComparer.Ordinal);

    public static TestScope BeginTest(ITest test, SeededDatabaseTest fixture)
    {
        var seed = Classes.GetOrAdd(FixtureOf(test).Id, _ => new ClassSeed());
        if (Interlocked.Exchange(ref seed.Running, 1) != 0)
        {
            throw new InvalidOperationException(
                $"{test.Name} began while another test of its class ran: the tests of a {nameof(SeededDatabaseTest)} class share one connection and run one " +
                "after another. Something made NUnit run them in parallel despite the class's [SingleThreaded].");
        }

        try
        {
            var classScope = seed.Scope(fixture);
            var scope = classScope.BeginNested(async: false, CancellationToken.None).GetAwaiter().GetResult();
            TestScope.SetCurrent(scope);
            return scope;
        }
        catch
        {
            Volatile.Write(ref seed.Running, 0);
            throw;
        }
    }

    public static void EndTest(ITest test)
    {
        if (Classes.TryGetValue(FixtureOf(test).Id, out var seed))
            Volatile.Write(ref seed.Running, 0);
    }

    /// <summary>After a suite: a class's (or a parameterized class's instance's) seed ends with it, whatever shapes its tests had.</summary>
    public static void EndClass(ITest suite)
    {
        if (!Classes.TryRemove(suite.Id, out var seed))
            return;

        if (seed.End() is { } problems)
            TestContext.Progress.WriteLine($"linq2db-testkit: the shared seed of {suite.FullName}: {problems}");
    }

    /// <summary>
    /// The fixture a test belongs to — the class, or one instance of a parameterized class — above the suites NUnit
    /// makes for <c>[TestCase]</c>, <c>[TestCaseSource]</c>, <c>[Theory]</c> and <c>[Values]</c> methods.
    /// </summary>
    static ITest FixtureOf(ITest test)
    {
        for (var current = test.Parent; current is not null; current = current.Parent)
        {
            if (current.TestType is "TestFixture" or "GenericFixture")
                return current;
        }

        return test.Parent ?? test;
    }

    sealed class ClassSeed
    {
        TestScope? _scope;
        Exception? _seedFailure;

        /// <summary>1 while a test of the class runs.</summary>
        public int Running;

        /// <summary>The class's scope, seeded by the first test's fixture; a seed that failed fails every test of the class, the first one too.</summary>
        public TestScope Scope(SeededDatabaseTest fixture)
        {
            if (_seedFailure is not null)
                throw SeedFailed();
            if (_scope is not null)
                return _scope;

            var scope = TestRun.Database.BeginScope();
            TestScope.SetCurrent(scope);
            try
            {
                fixture.RunSeedAsync().GetAwaiter().GetResult();
                if (ScopedTest.BypassMessage(scope) is { } bypass)
                    throw new InvalidOperationException(bypass);
            }
            catch (Exception exception)
            {
                _seedFailure = exception;
                TestScope.SetCurrent(null);
                ScopedTest.End(scope);
                throw SeedFailed();
            }

            TestScope.SetCurrent(null);
            scope.IdleBetweenNestedScopes();
            return _scope = scope;
        }

        InvalidOperationException SeedFailed() =>
            new($"The class's seed ({nameof(SeededDatabaseTest)}.SeedAsync) failed, so none of its tests can run: {_seedFailure!.GetType().Name}: {_seedFailure.Message}", _seedFailure);

        public string? End() => _scope is null ? null : ScopedTest.End(_scope);
    }
}

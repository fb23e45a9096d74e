using System.Collections.Concurrent;
using Linq2DbTestKit.Internal;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The class scopes of <see cref="SeededDatabaseTest"/> classes: begun and seeded at the class's first test, one
/// nested scope per test on top of it, taking turns, rolled back after the class's last test.
/// </summary>
internal static class SharedSeeds
{
    static readonly ConcurrentDictionary<string, ClassSeed> Classes = new(StringComparer.Ordinal);

    public static TestScope BeginTest(ITest test, SeededDatabaseTest fixture)
    {
        var seed = Classes.GetOrAdd(ClassId(test), _ => new ClassSeed());
        seed.Turn.Wait();
        try
        {
            var classScope = seed.Scope(fixture);
            var scope = classScope.BeginNested(async: false, CancellationToken.None).GetAwaiter().GetResult();
            TestScope.SetCurrent(scope);
            return scope;
        }
        catch
        {
            seed.Turn.Release();
            throw;
        }
    }

    public static void EndTest(ITest test)
    {
        if (Classes.TryGetValue(ClassId(test), out var seed))
            seed.Turn.Release();
    }

    public static void EndClass(ITest suite)
    {
        if (!Classes.TryRemove(suite.Id, out var seed))
            return;

        if (seed.End() is { } problems)
            TestContext.Progress.WriteLine($"linq2db-testkit: the shared seed of {suite.FullName}: {problems}");
    }

    /// <summary>The fixture suite a test belongs to: a class, or one parameter set of a parameterized class.</summary>
    static string ClassId(ITest test) => test.Parent?.Id ?? test.Id;

    sealed class ClassSeed
    {
        TestScope? _scope;
        Exception? _seedFailure;

        public SemaphoreSlim Turn { get; } = new(1, 1);

        /// <summary>The class's scope, seeded by the first test's fixture; a seed that failed fails every test of the class.</summary>
        public TestScope Scope(SeededDatabaseTest fixture)
        {
            if (_seedFailure is not null)
                throw new InvalidOperationException($"The class's seed failed, so none of its tests can run: {_seedFailure.Message}", _seedFailure);
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
                throw;
            }

            TestScope.SetCurrent(null);
            scope.IdleBetweenNestedScopes();
            return _scope = scope;
        }

        public string? End() => _scope is null ? null : ScopedTest.End(_scope);
    }
}

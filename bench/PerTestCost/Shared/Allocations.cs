using NUnit.Framework;
using NUnit.Framework.Interfaces;

[assembly: PerTestCost.Allocations]
[assembly: Parallelizable(ParallelScope.All)]
[assembly: FixtureLifeCycle(LifeCycle.InstancePerTestCase)]

namespace PerTestCost;

/// <summary>
/// With BENCH_ALLOCATIONS=1, writes the bytes the process allocated during each test (its set-up, the isolation's begin
/// and end, the test) to the test's output, from outside every other action. Off in the timed runs: a precise count costs.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class AllocationsAttribute : Attribute, ITestAction
{
    static readonly bool Enabled = Environment.GetEnvironmentVariable("BENCH_ALLOCATIONS") == "1";
    static readonly AsyncLocal<long> Start = new();

    public ActionTargets Targets => ActionTargets.Test;

    public void BeforeTest(ITest test)
    {
        if (Enabled)
            Start.Value = GC.GetTotalAllocatedBytes(precise: true);
    }

    public void AfterTest(ITest test)
    {
        if (Enabled)
            TestContext.Out.WriteLine($"allocated={GC.GetTotalAllocatedBytes(precise: true) - Start.Value}");
    }
}

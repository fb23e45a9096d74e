using System.Diagnostics;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>
/// Times every strategy at every schema size in rounds: each round runs each case once, as a batch of tests, in an order
/// shuffled anew. A slow spell of the machine, or the disk work a database-per-test strategy leaves behind, then falls
/// on all cases alike instead of on whichever ran during it, which is what a benchmark that measures one case after
/// another (as BenchmarkDotNet does) cannot avoid on a small, shared machine. Before each batch, untimed, the server
/// writes out what the previous batch left to write.
/// </summary>
public static class Harness
{
    /// <summary>A batch lasts about this long, whatever a test of the case costs.</summary>
    static readonly TimeSpan BatchTime = TimeSpan.FromMilliseconds(100);

    public sealed record Case(string Strategy, int Tables, Func<Task<int>> Run)
    {
        public List<double> Microseconds { get; } = [];

        public int BatchSize { get; set; } = 1;
    }

    public static async Task RunAsync(IReadOnlyList<Case> cases, int warmupRounds, int rounds, Func<Task> settle)
    {
        foreach (var c in cases)
        {
            await c.Run();
            var watch = Stopwatch.StartNew();
            await c.Run();
            c.BatchSize = (int)Math.Clamp(BatchTime / watch.Elapsed, 1, 100);
        }

        var random = new Random(20261125);
        for (var round = -warmupRounds; round < rounds; round++)
        {
            foreach (var c in cases.OrderBy(_ => random.Next()))
            {
                await settle();
                for (var i = 0; i < c.BatchSize; i++)
                {
                    var watch = Stopwatch.StartNew();
                    await c.Run();
                    if (round >= 0)
                        c.Microseconds.Add(watch.Elapsed.TotalMicroseconds);
                }
            }

            Console.WriteLine(round < 0 ? $"warm-up round {round + warmupRounds + 1} of {warmupRounds}" : $"round {round + 1} of {rounds}");
        }
    }

    /// <summary>The value below which <paramref name="fraction"/> of the sorted <paramref name="values"/> lie.</summary>
    public static double Quantile(IReadOnlyList<double> values, double fraction)
    {
        var sorted = values.Order().ToArray();
        var position = fraction * (sorted.Length - 1);
        var below = (int)Math.Floor(position);
        var above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + ((position - below) * (sorted[above] - sorted[below]));
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Xml.Linq;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>
/// The per-test cost as users meet it: real NUnit test projects run by <c>dotnet test</c> (bench/PerTestCost), each
/// test's duration read from the TRX file NUnit's adapter writes. The floor project isolates its tests by hand, with no
/// kit in the process; the kit's project with <c>DatabaseTest</c>, a bare <c>TestScope</c>, and through the ASP.NET Core
/// integration. Each kind runs in a process of its own, the kinds in a rotating order, repeated: the ratio is the median
/// of the per-run medians over the floor's.
/// </summary>
public static class PerTestRuns
{
    public sealed record Kind(string Name, string Project, string TestClass, string? FloorOf = null);

    public static readonly Kind Floor = new("floor: hand-written BEGIN … ROLLBACK, linq2db UseTransaction", "Floor", "PerTestCost.Floor.HandWritten");
    public static readonly Kind AspNetFloor = new("floor, ASP.NET Core: a hand-written DI override on the test's transaction", "Floor", "PerTestCost.Floor.HandWrittenAspNet");

    public static readonly IReadOnlyList<Kind> Kinds =
    [
        Floor,
        new("kit: DatabaseTest", "Kit", "PerTestCost.Kit.WithDatabaseTest", Floor.Name),
        new("kit: TestScope in [SetUp]/[TearDown]", "Kit", "PerTestCost.Kit.WithScopeAlone", Floor.Name),
        AspNetFloor,
        new("kit, ASP.NET Core: DatabaseTest and CreateClient(Scope)", "Kit", "PerTestCost.Kit.WithAspNet", AspNetFloor.Name),
    ];

    /// <param name="RunMedians">Per run, the median duration of all its tests.</param>
    /// <param name="WarmRunMedians">Per run, the median duration of its later half of tests (by start): the process warmed up, the JIT's code optimised.</param>
    public sealed record Measurement(Kind Kind, int Tables, int Workers, IReadOnlyList<double> RunMedians, IReadOnlyList<double> WarmRunMedians, double? AllocatedBytes);

    public static async Task<IReadOnlyList<Measurement>> MeasureAsync(string root, string server, IReadOnlyList<int> tableCounts, IReadOnlyList<int> workerCounts, int repeats, int tests)
    {
        foreach (var project in new[] { "Floor", "Kit" })
            Run("dotnet", ["build", Path.Combine(root, "bench", "PerTestCost", project), "-c", "Release", "-v", "q", "-clp:ErrorsOnly", "--nologo"], root, new Dictionary<string, string>());

        var results = new List<Measurement>();
        var output = Directory.CreateTempSubdirectory("per-test-cost-");
        try
        {
            foreach (var tables in tableCounts)
            foreach (var workers in workerCounts)
            {
                var medians = Kinds.ToDictionary(k => k, _ => new List<double>());
                var warmMedians = Kinds.ToDictionary(k => k, _ => new List<double>());
                for (var repeat = 0; repeat < repeats; repeat++)
                {
                    // A rotating order: no kind always runs first (colder) or last.
                    foreach (var kind in Kinds.Skip(repeat % Kinds.Count).Concat(Kinds.Take(repeat % Kinds.Count)))
                    {
                        var durations = await RunKindAsync(root, server, kind, tables, workers, tests, output.FullName, allocations: false);
                        medians[kind].Add(Median(durations.Select(d => d.Milliseconds)));
                        warmMedians[kind].Add(Median(durations.OrderBy(d => d.Start).Skip(durations.Count / 2).Select(d => d.Milliseconds)));
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {tables,3} tables, {workers} workers, {kind.Name}: median {medians[kind][^1]:0.000} ms"));
                    }
                }

                foreach (var kind in Kinds)
                {
                    // Allocations: once per kind, serial, in a run of its own (a precise count slows the test it counts).
                    double? allocated = null;
                    if (workers == 1)
                        allocated = Median((await RunKindAsync(root, server, kind, tables, 1, tests, output.FullName, allocations: true)).Select(d => (double)(d.Allocated ?? 0)));
                    results.Add(new Measurement(kind, tables, workers, medians[kind], warmMedians[kind], allocated));
                }
            }
        }
        finally
        {
            output.Delete(recursive: true);
        }

        return results;
    }

    static async Task<IReadOnlyList<(DateTimeOffset Start, double Milliseconds, long? Allocated)>> RunKindAsync(
        string root, string server, Kind kind, int tables, int workers, int tests, string output, bool allocations)
    {
        var trx = Path.Combine(output, $"{Guid.NewGuid():N}.trx");
        var environment = new Dictionary<string, string>
        {
            ["BENCH_SERVER"] = server,
            ["TESTKIT_POSTGRES_CONNECTION"] = server,
            ["TESTKIT_PROVIDER"] = "postgres",
            ["BENCH_TABLES"] = tables.ToString(CultureInfo.InvariantCulture),
            ["BENCH_TESTS"] = tests.ToString(CultureInfo.InvariantCulture),
            ["BENCH_ALLOCATIONS"] = allocations ? "1" : "0",
        };
        // NUnit's own filter, not dotnet test's --filter: above its AssemblySelectLimit (2,000 test cases), NUnit's adapter
        // runs every fixture of the assembly and drops the other fixtures' results, so they would run, unseen, in the
        // measured process.
        Run("dotnet", ["test", Path.Combine(root, "bench", "PerTestCost", kind.Project), "-c", "Release", "--no-build", "--nologo",
            "--logger", $"trx;LogFileName={trx}",
            "--", $"NUnit.Where=class == {kind.TestClass}", $"NUnit.NumberOfTestWorkers={workers}"], root, environment);
        await Task.CompletedTask;
        return ReadTrx(trx, kind.TestClass, tests);
    }

    /// <summary>Each passed test's start, duration and, when written, its allocated bytes; fails unless every test ran and passed.</summary>
    static List<(DateTimeOffset Start, double Milliseconds, long? Allocated)> ReadTrx(string trx, string testClass, int tests)
    {
        XNamespace ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
        var document = XDocument.Load(trx);
        var results = document.Descendants(ns + "UnitTestResult").ToList();
        var failed = results.Where(r => (string?)r.Attribute("outcome") != "Passed").Select(r => (string?)r.Attribute("testName")).ToList();
        if (results.Count != tests || failed.Count > 0)
            throw new InvalidOperationException($"{testClass}: {results.Count} results of {tests}, {failed.Count} not passed ({string.Join(", ", failed.Take(3))}); see {trx}");

        return [.. results.Select(r =>
        {
            var duration = TimeSpan.Parse((string)r.Attribute("duration")!, CultureInfo.InvariantCulture).TotalMilliseconds;
            var output = r.Element(ns + "Output")?.Element(ns + "StdOut")?.Value ?? "";
            var marker = output.IndexOf("allocated=", StringComparison.Ordinal);
            long? allocated = marker < 0 ? null : long.Parse(output[(marker + 10)..].Split('\n')[0].Trim(), CultureInfo.InvariantCulture);
            var start = DateTimeOffset.Parse((string)r.Attribute("startTime")!, CultureInfo.InvariantCulture);
            return (start, duration, allocated);
        })];
    }

    static void Run(string file, IReadOnlyList<string> arguments, string directory, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var standardOutput = process.StandardOutput.ReadToEndAsync();
        var standardError = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not end within 5 minutes: it hangs.");
        }

        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{standardOutput.Result}\n{standardError.Result}");
    }

    static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The results as markdown: per kind, schema size and workers, the median per-test time, its ratio to the floor, the spread of the runs.</summary>
    public static string Report(IReadOnlyList<Measurement> measurements, int repeats, int tests, string serverVersion, string serverOrigin)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTime.UtcNow:yyyy-MM-dd} by `bench/run --per-test` on {serverVersion}, {serverOrigin}, {Environment.ProcessorCount} cores.")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"Each row: {repeats} runs of `dotnet test` of one NUnit fixture of {tests} identical tests (insert one row through the application's linq2db context, count it), each in a process of its own, the kinds in a rotating order. Time = the median of the runs' median per-test durations, as NUnit reports them in the TRX file (set-up, the isolation's begin and end, the test, tear-down); ratio = that over the floor's at the same schema size and workers; range = the ratios of single runs; warmed = the same for the later half of each run's tests (by start), once the process has warmed up. The floor project has no kit in its process. Allocated = the median bytes the process allocated during one test, serial, in a separate run.")
            .AppendLine()
            .AppendLine("| tables | workers | isolation | per test | ratio to floor | range of single runs | warmed: per test | warmed: ratio | allocated per test |")
            .AppendLine("|---:|---:|---|---:|---:|---|---:|---:|---:|");
        foreach (var m in measurements)
        {
            var time = Median(m.RunMedians);
            var floor = m.Kind.FloorOf is null ? null : measurements.Single(f => f.Kind.Name == m.Kind.FloorOf && f.Tables == m.Tables && f.Workers == m.Workers);
            var ratio = floor is null ? "" : (time / Median(floor.RunMedians)).ToString("0.00", CultureInfo.InvariantCulture) + "×";
            var range = floor is null ? "" : string.Create(CultureInfo.InvariantCulture,
                $"{m.RunMedians.Zip(floor.RunMedians, (k, f) => k / f).Min():0.00}–{m.RunMedians.Zip(floor.RunMedians, (k, f) => k / f).Max():0.00}×");
            var warm = Median(m.WarmRunMedians);
            var warmRatio = floor is null ? "" : (warm / Median(floor.WarmRunMedians)).ToString("0.00", CultureInfo.InvariantCulture) + "×";
            var allocated = m.AllocatedBytes is { } bytes ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024:0.0} KiB") : "";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {m.Tables} | {m.Workers} | {m.Kind.Name} | {time:0.000} ms | {ratio} | {range} | {warm:0.000} ms | {warmRatio} | {allocated} |");
        }

        return text.ToString();
    }
}

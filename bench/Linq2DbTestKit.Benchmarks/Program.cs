using System.Diagnostics;
using System.Globalization;
using System.Text;
using Linq2DbTestKit.Benchmarks;
using Npgsql;

// bench/run runs this: the per-test cost of each strategy at 5, 20 and 100 tables, then the NUnit suite's wall time with one
// and two workers; it writes bench/results/results.md and bench/results/per-test-cost.svg.
//   --quick        fewer rounds
//   --skip-suite   no NUnit suite timing
//   --reset-cost   only the real-commit reset's cost against rows written and held (bench/results/reset-cost.md)
//   --per-test     only the per-test cost as dotnet test runs NUnit projects, against a hand-written floor (bench/results/per-test-dotnet-test.md)
var quick = args.Contains("--quick");
if (args.FirstOrDefault(a => a is not ("--quick" or "--skip-suite" or "--reset-cost" or "--per-test")) is { } unknown)
{
    Console.Error.WriteLine($"bench/run: unknown argument '{unknown}'. Use --quick (fewer rounds), --skip-suite (no NUnit suite timing), --reset-cost (only the reset's cost) or --per-test (only the per-test cost under dotnet test).");
    return 2;
}

var (warmupRounds, rounds) = quick ? (1, 5) : (3, 30);
await using var throwaway = await ServerAsync();
var serverOrigin = throwaway is null ? "the configured server" : "a throwaway cluster the kit started (fsync off)";

var root = RepositoryRoot();
var resultsDirectory = Path.Combine(root, "bench", "results");
Directory.CreateDirectory(resultsDirectory);

if (args.Contains("--per-test"))
{
    var (repeats, tests) = quick ? (2, 100) : (5, 300);
    var measured = await PerTestRuns.MeasureAsync(root, Strategies.ServerConnectionString, quick ? [5] : Strategies.TableCounts, [1, 4], repeats, tests);
    var perTest = PerTestRuns.Report(measured, repeats, tests, await ServerVersionAsync(), serverOrigin);
    await File.WriteAllTextAsync(Path.Combine(resultsDirectory, "per-test-dotnet-test.md"), $"# Per-test cost under dotnet test\n\n{perTest}");
    Console.WriteLine(perTest);
    return 0;
}

var resetRounds = quick ? 5 : 20;
var resetCost = ResetCost.Report(await ResetCost.MeasureAsync(Strategies.ServerConnectionString, resetRounds), resetRounds);
await File.WriteAllTextAsync(Path.Combine(resultsDirectory, "reset-cost.md"),
    $"# Real-commit reset cost\n\nMeasured {DateTime.UtcNow:yyyy-MM-dd} by `bench/run --reset-cost` on {await ServerVersionAsync()}, {serverOrigin}.\n\n{resetCost}");
Console.WriteLine(resetCost);
if (args.Contains("--reset-cost"))
    return 0;

var databases = new List<Strategies>();
ClassSeeds.Measurement classSeeds;
var cases = new List<Harness.Case>();
try
{
    foreach (var tables in Strategies.TableCounts)
    {
        await BenchSchema.CreateAsync(Strategies.ServerConnectionString, tables);
        var strategies = new Strategies(tables);
        await strategies.SetUpAsync();
        databases.Add(strategies);
        cases.AddRange(strategies.All().Select(s => new Harness.Case(s.Name, tables, s.Run)));
    }

    await Harness.RunAsync(cases, warmupRounds, rounds, () => BenchSchema.SettleAsync(Strategies.ServerConnectionString));
    Console.WriteLine("class-shared seeds");
    classSeeds = await ClassSeeds.MeasureAsync(Strategies.ServerConnectionString, quick ? 2 : 5);
}
finally
{
    foreach (var strategies in databases)
        await strategies.CleanUpAsync();
    foreach (var tables in Strategies.TableCounts)
        await BenchSchema.DropAsync(Strategies.ServerConnectionString, tables);
}

var results = Result.From(cases);
Console.WriteLine("schema reuse");
var schemaReuse = SchemaReuse.Measure(root, Strategies.ServerConnectionString, quick ? 1 : 3);
var suite = args.Contains("--skip-suite") ? [] : SuiteWallTimes(root);
var report = Report(results, classSeeds, schemaReuse, suite, await ServerVersionAsync(), serverOrigin, rounds, warmupRounds) + "\n" + resetCost;
await File.WriteAllTextAsync(Path.Combine(resultsDirectory, "results.md"), report);
await File.WriteAllTextAsync(Path.Combine(resultsDirectory, "per-test-cost.svg"),
    Chart.Svg(results, "Per-test isolation cost against schema size (PostgreSQL)"));
Console.WriteLine(report);
Console.WriteLine($"Written: {Path.Combine(resultsDirectory, "results.md")} and per-test-cost.svg");
return 0;

/// <summary>The server to measure on: the configured one, the one at the default address, or a throwaway cluster of the kit's.</summary>
static async Task<Linq2DbTestKit.PostgreSql.LocalPostgreSqlServer?> ServerAsync()
{
    if (Environment.GetEnvironmentVariable("TESTKIT_POSTGRES_CONNECTION") is { Length: > 0 } configured)
    {
        Strategies.ServerConnectionString = configured;
        return null;
    }

    if (await Linq2DbTestKit.Internal.ThrowawayServer.AnswersAsync("127.0.0.1", 5432, CancellationToken.None))
        return null;

    var (binaries, searched) = Linq2DbTestKit.PostgreSql.LocalPostgreSqlServer.FindBinaries(Environment.GetEnvironmentVariable);
    var server = await Linq2DbTestKit.PostgreSql.LocalPostgreSqlServer.StartAsync(
        binaries ?? throw new InvalidOperationException($"No PostgreSQL answers on 127.0.0.1:5432, and initdb and pg_ctl are not in {searched}: install PostgreSQL's server, or set TESTKIT_POSTGRES_CONNECTION."),
        CancellationToken.None);
    Strategies.ServerConnectionString = server.ConnectionString;
    return server;
}

static string RepositoryRoot()
{
    for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
    {
        if (File.Exists(Path.Combine(directory.FullName, "Linq2DbTestKit.slnx")))
            return directory.FullName;
    }

    throw new InvalidOperationException("Run the benchmarks from the repository: Linq2DbTestKit.slnx was not found above " + AppContext.BaseDirectory);
}

static async Task<string> ServerVersionAsync()
{
    await using var connection = new NpgsqlConnection(Strategies.ServerConnectionString);
    await connection.OpenAsync();
    await using var command = new NpgsqlCommand("SELECT version()", connection);
    return (string)(await command.ExecuteScalarAsync())!;
}

/// <summary>The PostgreSQL test project's wall time, built once, then run with one and with two NUnit workers.</summary>
static IReadOnlyList<(int Workers, TimeSpan Time, bool Passed)> SuiteWallTimes(string root)
{
    var project = Path.Combine(root, "tests", "Postgres");
    Dotnet(root, "build", project, "-c", "Release", "-v", "q");
    return [.. new[] { 1, 2 }.Select(workers =>
    {
        var watch = Stopwatch.StartNew();
        var passed = Dotnet(root, "test", project, "-c", "Release", "--no-build", "--", $"NUnit.NumberOfTestWorkers={workers}");
        return (workers, watch.Elapsed, passed);
    })];
}

static bool Dotnet(string root, params string[] arguments)
{
    var start = new ProcessStartInfo("dotnet") { WorkingDirectory = root };
    foreach (var argument in arguments)
        start.ArgumentList.Add(argument);

    // The suite runs on the benchmark's server: its time is the tests', not a server's start.
    start.Environment["TESTKIT_POSTGRES_CONNECTION"] = Strategies.ServerConnectionString;
    using var process = Process.Start(start)!;
    process.WaitForExit();
    return process.ExitCode == 0;
}

static string Report(IReadOnlyList<Result> results, ClassSeeds.Measurement classSeeds, IReadOnlyList<SchemaReuse.Run> schemaReuse,
    IReadOnlyList<(int Workers, TimeSpan Time, bool Passed)> suite, string serverVersion, string serverOrigin, int rounds, int warmupRounds)
{
    var text = new StringBuilder();
    var c = CultureInfo.InvariantCulture;
    text.AppendLine("# Per-test isolation cost").AppendLine()
        .AppendLine(c, $"Measured {DateTime.UtcNow:yyyy-MM-dd} by `bench/run`: {rounds} rounds after {warmupRounds} of warm-up; each round runs every case below once, in a shuffled order, as a batch of about 100 ms of tests (one test at least), timing each test, after a checkpoint and a `sync` (untimed) that write out what the previous batch left. Median and quartiles are over all the tests a case ran.")
        .AppendLine()
        .AppendLine(c, $"- machine: {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; {Processor()} ({Environment.ProcessorCount} logical cores); {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}")
        .AppendLine(c, $"- server: {serverVersion}, on loopback, {serverOrigin}")
        .AppendLine(c, $"- linq2db {Version(typeof(LinqToDB.DataOptions))}, Npgsql {Version(typeof(NpgsqlConnection))}, Respawn {Version(typeof(Respawn.Respawner))}")
        .AppendLine()
        .AppendLine("One test = begin isolated, do the unit of work (a customer, two orders, four order lines, one joined count), leave nothing behind. ")
        .AppendLine("Ratio = median over the median of the kit's floor (the same work through linq2db's `UseTransaction` on a raw BEGIN … ROLLBACK, same pool) at the same schema size.")
        .AppendLine()
        .AppendLine("Why not BenchmarkDotNet: it measures one case after another, and on this two-core virtual machine the slow spells and the disk work left by the database-per-test and TRUNCATE cases land on whichever case runs next: in two BenchmarkDotNet runs the kit's scope measured 0.78 and 1.47 times its floor at the same schema size, though its code path does not depend on the schema at all. Interleaving spreads that noise over every case.")
        .AppendLine();

    var tables = results.Select(r => r.Tables).Distinct().Order().ToArray();
    text.Append("| strategy |");
    foreach (var t in tables)
        text.Append(c, $" {t} tables: median (Q1–Q3) | ratio |");
    text.AppendLine().Append("|---|").AppendLine(string.Concat(Enumerable.Repeat("---:|---:|", tables.Length)));
    foreach (var strategy in results.Select(r => r.Strategy).Distinct())
    {
        text.Append(c, $"| {strategy} |");
        foreach (var t in tables)
        {
            var r = results.Single(x => x.Strategy == strategy && x.Tables == t);
            text.Append(c, $" {Format(r.MedianMicroseconds)} ({Format(r.Q1Microseconds)}–{Format(r.Q3Microseconds)}) | {r.Ratio:0.00} |");
        }

        text.AppendLine();
    }

    text.AppendLine().AppendLine("![Per-test cost against schema size](per-test-cost.svg)").AppendLine().AppendLine("## Goals").AppendLine();
    double Median(string strategy, int t) => results.Single(r => r.Strategy == strategy && r.Tables == t).MedianMicroseconds;
    var worstRatio = tables.Max(t => Median(Strategies.Kit, t) / Median(Strategies.Floor, t));
    text.AppendLine(c, $"- {(worstRatio <= 1.15 ? "met" : "NOT met")}: the kit's scope costs at most 1.15 times its floor — at most {worstRatio:0.00} times, over the three schema sizes.");
    var worstTestRatio = tables.Max(t => Median(Strategies.KitTest, t) / Median(Strategies.Floor, t));
    text.AppendLine(c, $"- {(worstTestRatio <= 1.15 ? "met" : "NOT met")}: a test through `DatabaseTest`, with its begin and end, costs at most 1.15 times the floor — at most {worstTestRatio:0.00} times, over the three schema sizes.");
    if (tables.Contains(20))
    {
        var respawn = Median(Strategies.Respawn, 20) / Median(Strategies.Kit, 20);
        var reset = Median(Strategies.Respawn, 20) - Median(Strategies.Floor, 20);
        var resetText = Format(reset);
        text.AppendLine(c, $"- {(respawn >= 20 ? "met" : "NOT met")}: at 20 tables the kit is at least 20 times faster per test than Respawn's reset — {respawn:0.0} times, whole tests compared. " +
                           $"Respawn's reset alone (its test less the floor's, which does the same work) costs {resetText}, {reset / Median(Strategies.Kit, 20):0.0} times the kit's whole test; " +
                           $"what keeps the whole-test ratio lower is the unit of work itself, the same eight round trips in every strategy.");
    }

    var growth = Median(Strategies.Kit, tables[^1]) / Median(Strategies.Kit, tables[0]);
    text.AppendLine(c, $"- {(growth <= 1.15 ? "met" : "NOT met")}: the kit's cost does not grow with the number of tables — {tables[^1]} tables cost {growth:0.00} times what {tables[0]} do (Respawn: {Median(Strategies.Respawn, tables[^1]) / Median(Strategies.Respawn, tables[0]):0.0} times; TRUNCATE: {Median(Strategies.Truncate, tables[^1]) / Median(Strategies.Truncate, tables[0]):0.0} times).");

    var resetAt100 = Median(Strategies.Respawn, tables[^1]) / Median(Strategies.RealCommits, tables[^1]);
    var resetGrowth = Median(Strategies.RealCommits, tables[^1]) / Median(Strategies.RealCommits, tables[0]);
    text.AppendLine(c, $"- {(resetAt100 >= 10 ? "met" : "NOT met")}: a real-commit test that writes 3 tables, with the kit's reset, is at least 10 times faster than Respawn's at {tables[^1]} tables — {resetAt100:0.0} times, whole tests compared.");
    text.AppendLine(c, $"- {(resetGrowth <= 1.15 ? "met" : "NOT met")}: the real-commit reset does not grow with the number of tables — {tables[^1]} tables cost {resetGrowth:0.00} times what {tables[0]} do.");

    text.AppendLine().AppendLine("## A class that shares an expensive seed").AppendLine()
        .AppendLine(c, $"A class of {ClassSeeds.TestsPerClass} tests (20-table schema); the seed is a user with a PBKDF2 password hash (100,000 rounds) and 50 orders, {classSeeds.SeedMilliseconds:0.0} ms; each test does the unit of work. Median over {classSeeds.Classes} classes of each kind:").AppendLine()
        .AppendLine("| strategy | per test |").AppendLine("|---|---:|")
        .AppendLine(c, $"| seed in every test's scope | {classSeeds.PerTestSeededMilliseconds:0.00} ms |")
        .AppendLine(c, $"| `SeededDatabaseTest`: seed once per class, a savepoint per test | {classSeeds.PerTestSharedMilliseconds:0.00} ms |")
        .AppendLine()
        .AppendLine(c, $"Sharing the seed makes each test {classSeeds.PerTestSeededMilliseconds / classSeeds.PerTestSharedMilliseconds:0.0} times cheaper.");

    text.AppendLine().AppendLine("## A schema reused across runs").AppendLine()
        .AppendLine("`bench/SchemaReuse`: 100 tables from 50 FluentMigrator migrations, one test, run with `dotnet test --no-build` as a developer runs a single test. " +
                    "'to the first test body' is from starting `dotnet test` to the test's first line; 'prepared' is what the run reports for creating and preparing its database (`linq2db-testkit: the run's database was prepared in …`). " +
                    "Cold builds the template again (`TESTKIT_REBUILD_TEMPLATE=true`): the migrations run, then the database is saved as the template; warm copies it.").AppendLine()
        .AppendLine("| run | to the first test body | prepared |").AppendLine("|---|---:|---:|");
    foreach (var run in schemaReuse)
        text.AppendLine(c, $"| {run.Kind} | {run.ToFirstTestSeconds:0.00} s | {run.PreparedSeconds:0.000} s |");
    var warm = schemaReuse.Where(r => r.Kind.StartsWith("warm", StringComparison.Ordinal)).Max(r => r.PreparedSeconds);
    text.AppendLine().AppendLine(c, $"- {(warm <= 0.3 ? "met" : "NOT met")}: a warm run prepares its database in at most 0.3 s — at most {warm:0.000} s.");

    if (suite.Count > 0)
    {
        text.AppendLine().AppendLine("## The NUnit suite").AppendLine()
            .AppendLine("`dotnet test tests/Postgres -c Release -- NUnit.NumberOfTestWorkers=N`, wall time including the run's database creation, migrations and the child test runs:").AppendLine()
            .AppendLine("| workers | wall time | result |").AppendLine("|---:|---:|---|");
        foreach (var (workers, time, passed) in suite)
            text.AppendLine(c, $"| {workers} | {time.TotalSeconds:0.0} s | {(passed ? "passed" : "FAILED")} |");
    }

    return text.ToString();
}

static string Processor() =>
    File.Exists("/proc/cpuinfo")
        ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown processor"
        : "unknown processor";

static string Version(Type type) =>
    type.Assembly.GetName().Version?.ToString(3) ?? "?";

static string Format(double microseconds) => microseconds >= 1000
    ? (microseconds / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " ms"
    : microseconds.ToString("0", CultureInfo.InvariantCulture) + " µs";

/// <summary>One strategy at one schema size: the median and quartiles of its per-test cost, and its ratio to the floor.</summary>
public sealed record Result(string Strategy, int Tables, double MedianMicroseconds, double Q1Microseconds, double Q3Microseconds, double Ratio, int Tests)
{
    public static IReadOnlyList<Result> From(IReadOnlyList<Harness.Case> cases) =>
    [
        .. cases.Select(c =>
        {
            var floor = Harness.Quantile(cases.Single(f => f.Strategy == Strategies.Floor && f.Tables == c.Tables).Microseconds, 0.5);
            var median = Harness.Quantile(c.Microseconds, 0.5);
            return new Result(c.Strategy, c.Tables, median, Harness.Quantile(c.Microseconds, 0.25), Harness.Quantile(c.Microseconds, 0.75), median / floor, c.Microseconds.Count);
        }),
    ];
}

using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Linq2DbTestKit.PostgreSql;
using Npgsql;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>
/// bench/SchemaReuse, a test project of 100 tables from 50 migrations, run as a developer runs one test: from
/// <c>dotnet test</c> to the first test body, cold (the template built again) and warm (copied), with the preparation
/// time the run itself reports.
/// </summary>
public static partial class SchemaReuse
{
    public sealed record Run(string Kind, double ToFirstTestSeconds, double PreparedSeconds);

    public static IReadOnlyList<Run> Measure(string root, string serverConnectionString, int repeats)
    {
        var project = Path.Combine(root, "bench", "SchemaReuse");
        Dotnet(root, serverConnectionString, rebuild: false, null, "build", project, "-c", "Release", "-v", "q");
        var runs = new List<Run>();
        try
        {
            for (var i = 0; i < repeats; i++)
            {
                runs.Add(Once(root, project, serverConnectionString, rebuild: true));
                runs.Add(Once(root, project, serverConnectionString, rebuild: false));
            }
        }
        finally
        {
            DropTemplate(serverConnectionString);
        }

        return runs;
    }

    static Run Once(string root, string project, string serverConnectionString, bool rebuild)
    {
        var marker = Path.GetTempFileName();
        try
        {
            var started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var output = Dotnet(root, serverConnectionString, rebuild, marker, "test", project, "-c", "Release", "--no-build", "--logger", "console;verbosity=normal");
            var firstTest = long.Parse(File.ReadAllText(marker), CultureInfo.InvariantCulture);
            var prepared = PreparedIn().Match(output) is { Success: true } match ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN;
            return new Run(rebuild ? "cold (template built)" : "warm (template copied)", (firstTest - started) / 1000.0, prepared);
        }
        finally
        {
            File.Delete(marker);
        }
    }

    static string Dotnet(string root, string serverConnectionString, bool rebuild, string? marker, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.Environment["TESTKIT_POSTGRES_CONNECTION"] = serverConnectionString;
        start.Environment["TESTKIT_REBUILD_TEMPLATE"] = rebuild ? "true" : "false";
        if (marker is not null)
            start.Environment["SCHEMA_REUSE_FIRST_TEST_FILE"] = marker;
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"dotnet {string.Join(' ', arguments)} failed:\n{output}\n{error.Result}");
        return output;
    }

    static void DropTemplate(string serverConnectionString)
    {
        using var admin = new NpgsqlConnection(serverConnectionString);
        admin.Open();
        PostgreSqlDatabaseProvider.Instance.DropTemplateAsync(admin, TestDatabase.TemplateName("SchemaReuse/SchemaReuse.Run"), CancellationToken.None).GetAwaiter().GetResult();
    }

    [GeneratedRegex(@"the run's database was prepared in ([0-9.]+) s")]
    private static partial Regex PreparedIn();
}

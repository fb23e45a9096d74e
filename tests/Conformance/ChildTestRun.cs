using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance;

/// <summary>
/// One fixture run by <c>dotnet test</c> in a process of its own, for tests of a run that dies: the fixture writes a
/// ready file when it has got where it should be killed (what the parent needs to know on its first lines, its test
/// host's process id on the second), and the parent kills it there with SIGKILL.
/// </summary>
public sealed class ChildTestRun : IDisposable
{
    readonly Process _process;
    readonly Task<string> _output;
    readonly Task<string> _errors;
    readonly string _readyFile;

    ChildTestRun(Process process, string readyFile)
    {
        _process = process;
        _readyFile = readyFile;
        _output = process.StandardOutput.ReadToEndAsync();
        _errors = process.StandardError.ReadToEndAsync();
    }

    /// <summary>Starts the tests of <paramref name="fixture"/> in <paramref name="assembly"/>, with <paramref name="environment"/> added to this process's.</summary>
    public static ChildTestRun Start(Assembly assembly, string fixture, string readyFile, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "test", assembly.Location, "--filter", $"FullyQualifiedName~{fixture}" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        return new ChildTestRun(Process.Start(start)!, readyFile);
    }

    /// <summary>
    /// Waits for the ready file and returns its lines; fails the test with the child's output when the child ends, or is
    /// not ready within two minutes.
    /// </summary>
    public async Task<string[]> WaitUntilReadyAsync()
    {
        var waited = Stopwatch.StartNew();
        while (!File.Exists(_readyFile))
        {
            if (_process.HasExited || waited.Elapsed > TimeSpan.FromMinutes(2))
            {
                _process.Kill(entireProcessTree: true);
                Assert.Fail($"the child run did not get ready:\n{await _output}{await _errors}");
            }

            await Task.Delay(100);
        }

        // It may be read while the child still writes it: read again until both lines are there.
        var lines = await ReadLinesAsync();
        while (lines.Length < 2 && waited.Elapsed < TimeSpan.FromMinutes(2))
        {
            await Task.Delay(50);
            lines = await ReadLinesAsync();
        }

        File.Delete(_readyFile);
        if (lines.Length < 2)
            Assert.Fail($"the child's ready file says '{string.Join(' ', lines)}', not its two lines: what the test needs and its test host's process id");
        return lines;
    }

    /// <summary>
    /// SIGKILL, the test host (the ready file's second line) first: killed after its runner, it could see the runner gone
    /// and end its run cleanly, which is what the test must not let it do.
    /// </summary>
    public async Task KillAsync(string[] readyLines)
    {
        using (var host = Process.GetProcessById(int.Parse(readyLines[1], CultureInfo.InvariantCulture)))
            host.Kill();
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        await _output;
        await _errors;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }

    async Task<string[]> ReadLinesAsync() =>
        (await File.ReadAllTextAsync(_readyFile)).Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
}

using System.Diagnostics;
using System.Globalization;
using System.Text;
using LinqToDB.Data;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// What a test scope sent to the database, in order: linq2db's trace of its queries, the savepoints the kit made of
/// the application's transactions, raw ADO.NET commands and every error. Bounded, so a test that runs a million
/// statements keeps only the latest.
/// </summary>
internal sealed class ScopeTrace
{
    const int MaxEntries = 2000;
    const int MaxEntryLength = 4000;

    readonly Queue<string> _entries = new();
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly string? _password;
    int _dropped;

    public ScopeTrace(string? password) => _password = password;

    public void Add(string text)
    {
        text = Secrets.Scrub(text, _password);
        if (text.Length > MaxEntryLength)
            text = string.Concat(text.AsSpan(0, MaxEntryLength), " …(cut)");

        var line = string.Create(CultureInfo.InvariantCulture, $"[{_clock.Elapsed.TotalMilliseconds,9:F1} ms] {text}");
        lock (_entries)
        {
            _entries.Enqueue(line);
            if (_entries.Count > MaxEntries)
            {
                _entries.Dequeue();
                _dropped++;
            }
        }
    }

    /// <summary>The receiver of linq2db's trace for every <see cref="DataConnection"/> built from a scope's options.</summary>
    public static void OnLinqToDBTrace(TraceInfo info)
    {
        if (info.DataConnection.TryGetDbConnection() is not ScopeConnection connection)
            return;

        var trace = connection.Scope.TraceLog;
        switch (info.TraceInfoStep)
        {
            case TraceInfoStep.BeforeExecute when info.Operation is not (TraceOperation.BeginTransaction
                or TraceOperation.CommitTransaction or TraceOperation.RollbackTransaction or TraceOperation.DisposeTransaction):
                trace.Add($"{connection.Origin}: {info.SqlText.TrimEnd()}");
                break;
            case TraceInfoStep.Error:
                trace.Add($"{connection.Origin}: {info.Operation} failed: {info.Exception?.GetType().Name}: {info.Exception?.Message}");
                break;
        }
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        lock (_entries)
        {
            if (_dropped > 0)
                text.Append(CultureInfo.InvariantCulture, $"({_dropped} earlier entries dropped)\n");
            foreach (var entry in _entries)
                text.Append(entry).Append('\n');
        }

        return text.ToString();
    }
}

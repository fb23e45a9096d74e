using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using LinqToDB.Data;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// What a test scope sent to the database, in order: linq2db's queries, the savepoints the kit made of the application's
/// transactions, raw ADO.NET commands and every error. Bounded, so a test that runs a million statements keeps only
/// the latest.
/// </summary>
/// <remarks>
/// Recording keeps references only — the command's text and a copy of its parameter values — and formats nothing:
/// almost every trace is thrown away unread, with a passing test. Reading it formats the entries and masks the password.
/// </remarks>
internal sealed class ScopeTrace
{
    const int MaxEntries = 2000;
    const int MaxEntryLength = 4000;

    readonly Queue<Entry> _entries = new();
    readonly long _started = Stopwatch.GetTimestamp();
    readonly string? _password;
    int _dropped;

    public ScopeTrace(string? password) => _password = password;

    /// <summary>A line of the kit's own.</summary>
    public void Add(string text) => Add(null, text, null);

    /// <summary>A statement sent by <paramref name="origin"/>, with the values of its parameters.</summary>
    public void Add(string? origin, string text, (string Name, object? Value)[]? parameters)
    {
        var entry = new Entry(Stopwatch.GetTimestamp(), origin, text, parameters);
        lock (_entries)
        {
            _entries.Enqueue(entry);
            if (_entries.Count > MaxEntries)
            {
                _entries.Dequeue();
                _dropped++;
            }
        }
    }

    public static (string Name, object? Value)[]? Parameters(DbCommand? command)
    {
        if (command is null || command.Parameters.Count == 0)
            return null;

        var parameters = new (string, object?)[command.Parameters.Count];
        for (var i = 0; i < parameters.Length; i++)
            parameters[i] = (command.Parameters[i].ParameterName, command.Parameters[i].Value);
        return parameters;
    }

    /// <summary>The receiver of linq2db's trace for every <see cref="DataConnection"/> built from a scope's options.</summary>
    public static void OnLinqToDBTrace(TraceInfo info)
    {
        if (info.DataConnection.TryGetDbConnection() is not TestScopeConnection connection)
            return;

        var trace = connection.Scope.TraceLog;
        switch (info.TraceInfoStep)
        {
            case TraceInfoStep.BeforeExecute when info.Operation is not (TraceOperation.BeginTransaction
                or TraceOperation.CommitTransaction or TraceOperation.RollbackTransaction or TraceOperation.DisposeTransaction):
                trace.Add(connection.Origin, info.CommandText ?? info.Command?.CommandText ?? info.Operation.ToString(), Parameters(info.Command));
                break;
            case TraceInfoStep.Error:
                trace.Add(connection.Origin, $"{info.Operation} failed: {info.Exception?.GetType().Name}: {info.Exception?.Message}", null);
                break;
        }
    }

    public override string ToString()
    {
        Entry[] entries;
        int dropped;
        lock (_entries)
        {
            entries = [.. _entries];
            dropped = _dropped;
        }

        var text = new StringBuilder();
        if (dropped > 0)
            text.Append(CultureInfo.InvariantCulture, $"({dropped} earlier entries dropped)\n");
        foreach (var entry in entries)
            text.Append(Secrets.Scrub(Format(entry), _password)).Append('\n');
        return text.ToString();
    }

    string Format(Entry entry)
    {
        var line = new StringBuilder();
        line.Append(CultureInfo.InvariantCulture, $"[{Stopwatch.GetElapsedTime(_started, entry.Timestamp).TotalMilliseconds,9:F1} ms] ");
        if (entry.Origin is not null)
            line.Append(entry.Origin).Append(": ");
        line.Append(entry.Text.TrimEnd());
        if (entry.Parameters is { } parameters)
        {
            line.Append("\n    with ");
            for (var i = 0; i < parameters.Length; i++)
            {
                if (i > 0)
                    line.Append(", ");
                line.Append(parameters[i].Name).Append(" = ").Append(Literal(parameters[i].Value));
            }
        }

        return line.Length <= MaxEntryLength ? line.ToString() : string.Concat(line.ToString(0, MaxEntryLength), " …(cut)");
    }

    static string Literal(object? value) => value switch
    {
        null or DBNull => "NULL",
        string text => $"'{text}'",
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };

    readonly record struct Entry(long Timestamp, string? Origin, string Text, (string Name, object? Value)[]? Parameters);
}

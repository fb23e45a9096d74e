namespace Linq2DbTestKit.Internal;

/// <summary>A statement the driver ran, as its diagnostics report it.</summary>
/// <param name="ApplicationName">The application name of the connection it ran on.</param>
/// <param name="Database">The database it ran in.</param>
/// <param name="Text">Its SQL.</param>
/// <param name="Error">The error it failed with; <see langword="null"/> when it succeeded.</param>
internal sealed record ObservedStatement(string? ApplicationName, string? Database, string Text, string? Error)
{
    /// <summary>Whether it could have changed data: anything but a query. A query that calls a function that writes counts as a read.</summary>
    public bool Writes => SqlScanner.Writes(Text);
}

/// <summary>
/// Attributes statements that bypass a test's scope to the test, by the flow they ran in rather than by comparing
/// clocks: the drivers report every statement in the calling flow (Npgsql's activities, SqlClient's diagnostic events),
/// where <see cref="TestScope.Current"/> names the test. A statement counts when it ran on a connection of its own to
/// the scope's database, whatever connection string made it: applications rebuild connection strings with their own
/// application name and pool settings. A write to another database counts too: the application did not get the test's
/// connection string. Only the kit's own connections (application names <c>linq2db-testkit…</c>,
/// but for <see cref="TestDatabase.UnscopedApplicationName"/>) are left out.
/// </summary>
/// <remarks>
/// It costs no round trip: nothing is asked of the server. What runs outside any test's flow (a hosted service, another
/// process) is not attributed to a test; the run's leak check catches what such code commits.
/// </remarks>
internal static class BypassWatch
{
    static readonly Lock Gate = new();
    static readonly Dictionary<DatabaseProvider, IDisposable> Watching = [];

    public static void EnsureWatching(DatabaseProvider provider)
    {
        lock (Gate)
        {
            if (!Watching.ContainsKey(provider))
                Watching[provider] = provider.ObserveStatements(OnStatement);
        }
    }

    static void OnStatement(ObservedStatement statement)
    {
        if (TestScope.Current is not { } scope || IsKitConnection(statement.ApplicationName))
            return;

        if (string.Equals(statement.Database, scope.Database.Name, StringComparison.Ordinal))
        {
            if (!scope.Database.Provider.IsLinqToDBVersionProbe(statement.Text))
                scope.RecordBypass(statement);
        }
        else if (WroteElsewhere(scope, statement))
        {
            scope.RecordBypass(statement);
        }
    }

    /// <summary>
    /// Whether <paramref name="statement"/> committed a write to a database other than the run's: an application that
    /// did not get the test's connection string writes to the database of its own configuration, for good. Reads there
    /// are left alone, as are the kit's throwaway databases (<c>testkit_…</c>) and runs without a leak check, which
    /// commit on purpose.
    /// </summary>
    static bool WroteElsewhere(TestScope scope, ObservedStatement statement) =>
        statement is { Error: null, Database: { } database }
        && scope.Database.ChecksForLeaks
        && !database.StartsWith("testkit_", StringComparison.OrdinalIgnoreCase)
        && statement.Writes;

    static bool IsKitConnection(string? applicationName) =>
        applicationName is not null
        && applicationName.StartsWith(TestDatabase.ApplicationName, StringComparison.Ordinal)
        && !string.Equals(applicationName, TestDatabase.UnscopedApplicationName, StringComparison.Ordinal);
}

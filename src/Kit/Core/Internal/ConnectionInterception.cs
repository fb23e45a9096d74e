using System.Collections.Concurrent;
using System.Data.Common;
using LinqToDB.Data;
using LinqToDB.DataProvider;
using LinqToDB.Internal.DataProvider;
using LinqToDB.Metrics;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// Makes every linq2db context that the application builds itself, from a connection string or a configuration name,
/// land on the current test's scope when it connects to that test's database.
/// </summary>
/// <remarks>
/// <para>
/// The seam is linq2db's <see cref="DataProviderBase.OnConnectionCreated"/>: every provider calls it for every connection
/// it creates from a connection string, whichever way the context found its provider — a configuration name, the
/// default configuration, a provider name, or a provider instance (<c>UsePostgreSQL(connectionString)</c>). So the
/// application keeps its own provider, mapping and options, and only the connection becomes a handle on the scope's.
/// The provider-name table and the provider detectors would reach fewer shapes: a context given a provider instance
/// never consults them.
/// </para>
/// <para>
/// A connection is taken only when a test scope is current in the calling flow (<see cref="TestScope.Current"/>), the
/// connection is of the scope's driver and it names the scope's database. Everything else — start-up, hosted services,
/// connections to other databases — gets the connection linq2db created, unchanged.
/// </para>
/// </remarks>
internal static class ConnectionInterception
{
    static readonly Lock Gate = new();
    static readonly ConcurrentDictionary<string, string?> DatabaseByConnectionString = new(StringComparer.Ordinal);
    static Func<IDataProvider, DbConnection, DbConnection>? installed;
    static Func<IDataProvider, DbConnection, DbConnection>? application;
    static bool activityRegistered;

    /// <summary>Whether the hook is in place; false when it was never installed or the application has replaced it since.</summary>
    public static bool IsInstalled => installed is not null && DataProviderBase.OnConnectionCreated == installed;

    /// <summary>
    /// Installs the hook, or installs it again on top of a hook the application set after the kit's: the application's
    /// own hook still runs first, for every connection.
    /// </summary>
    public static void EnsureInstalled()
    {
        if (IsInstalled)
            return;

        lock (Gate)
        {
            if (IsInstalled)
                return;

            application = DataProviderBase.OnConnectionCreated;
            installed = OnConnectionCreated;
            DataProviderBase.OnConnectionCreated = installed;
        }
    }

    /// <summary>
    /// Registers the kit's hook into linq2db's activities, once per process: every provider-specific bulk copy on a
    /// scope's connection needs it (<see cref="BulkCopyActivity"/>), whether or not contexts are intercepted.
    /// </summary>
    public static void EnsureActivitiesRegistered()
    {
        lock (Gate)
        {
            if (activityRegistered)
                return;
            ActivityService.AddFactory(AttachOnOpen.Factory);
            activityRegistered = true;
        }
    }

    static DbConnection OnConnectionCreated(IDataProvider provider, DbConnection connection)
    {
        if (application is { } own)
            connection = own(provider, connection);

        if (TestScope.Current is not { } scope || !Targets(scope, provider, connection))
            return connection;

        var handle = scope.AdoptConnection();
        connection.Dispose();
        return handle;
    }

    /// <summary>Whether <paramref name="connection"/> is of the scope's driver and names the scope's database.</summary>
    static bool Targets(TestScope scope, IDataProvider provider, DbConnection connection)
    {
        var database = scope.Database;
        if (!database.InterceptsConnections)
            return false;
        if (!string.Equals(provider.ConnectionNamespace, database.LinqToDBProvider.ConnectionNamespace, StringComparison.Ordinal))
            return false;

        var connectionString = connection.ConnectionString;
        var named = DatabaseByConnectionString.GetOrAdd(connectionString, static (text, provider) => provider.DatabaseOf(text), database.Provider);
        return string.Equals(named, database.Name, StringComparison.Ordinal);
    }

    /// <summary>
    /// linq2db's hook for metrics, used for two things: when a context opens a connection the kit took, the context gets
    /// the kit's unwrap interceptor, so that provider-specific bulk copy reaches the driver's connection, as it does for
    /// contexts built from <see cref="TestScope.Options"/>; and each bulk copy is bracketed (<see cref="BulkCopyActivity"/>).
    /// </summary>
    sealed class AttachOnOpen : IActivity
    {
        static readonly AttachOnOpen Instance = new();

        public static IActivity? Factory(ActivityID id) => id switch
        {
            ActivityID.ConnectionOpen or ActivityID.ConnectionOpenAsync => Instance,
            ActivityID.BulkCopy or ActivityID.BulkCopyAsync => BulkCopyActivity.Start(),
            _ => null,
        };

        public IActivity AddQueryInfo(DataConnection? context, DbConnection? connection, DbCommand? command)
        {
            if (context is null || connection is null)
                return this;

            if (connection is TestScopeConnection scoped)
            {
                if (scoped is { AdoptedFromApplication: true } && scoped.MarkInterceptorAttached())
                    context.AddInterceptor(ScopeInterceptor.Instance);
            }
            else if (TestScope.Current is { } scope
                     && context.Options.ConnectionOptions is { } own && (own.ConnectionFactory is not null || own.DbConnection is not null)
                     && string.Equals(connection.Database, scope.Database.Name, StringComparison.Ordinal))
            {
                // The bypass report can then name the cause: a context whose connection the application makes itself.
                scope.NoteContextWithItsOwnConnection();
            }

            return this;
        }

        public IActivity AddTag(ActivityTagID key, object? value) => this;

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

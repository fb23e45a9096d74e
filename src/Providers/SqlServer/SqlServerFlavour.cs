using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.Data.SqlClient;

namespace Linq2DbTestKit.SqlServer;

/// <summary>
/// Which kind of SQL Server answers: SQL Server itself (on a server, in a container, Azure SQL Managed Instance) or
/// Babelfish for PostgreSQL, which speaks SQL Server's protocol and T-SQL on PostgreSQL. Read from the server once per
/// data source and process.
/// </summary>
/// <param name="Description">The flavour and its version, for the run's messages.</param>
/// <param name="IsBabelfish">Whether the server is Babelfish (<c>SERVERPROPERTY('Babelfish')</c>).</param>
internal sealed record SqlServerFlavour(string Description, bool IsBabelfish)
{
    static readonly ConcurrentDictionary<string, SqlServerFlavour> Known = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Whether <c>ALTER DATABASE</c> runs: not on Babelfish.</summary>
    public bool HasAlterDatabase => !IsBabelfish;

    /// <summary>Whether readers never wait for writers whatever the database's options: Babelfish runs on PostgreSQL's MVCC.</summary>
    public bool ReadsCommittedSnapshotAlways => IsBabelfish;

    /// <summary>The flavour of the server behind <paramref name="connection"/>, which is open.</summary>
    /// <exception cref="TestKitConfigurationException">The server is Azure SQL Database, which the kit does not support.</exception>
    public static async Task<SqlServerFlavour> OfAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        if (Known.TryGetValue(connection.DataSource, out var known))
            return known;

        await using var command = new SqlCommand(
            "SELECT CAST(SERVERPROPERTY('Babelfish') AS int), CAST(SERVERPROPERTY('BabelfishVersion') AS nvarchar(64)), " +
            "CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(64)), CAST(SERVERPROPERTY('EngineEdition') AS int)",
            (SqlConnection)connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var babelfish = !reader.IsDBNull(0) && reader.GetInt32(0) == 1;
        var edition = reader.IsDBNull(3) ? 0 : reader.GetInt32(3);
        if (!babelfish && edition == AzureSqlDatabase)
        {
            throw new TestKitConfigurationException(
                $"The server at {connection.DataSource} is Azure SQL Database, which the kit does not support: it cannot switch a connection to another " +
                "database or create one with plain CREATE DATABASE as the kit does for each run. Use SQL Server 2016 or later, Azure SQL Managed Instance, " +
                "or a container (docker compose -f docker/compose.yml up --wait sqlserver, in this repository).");
        }

        var flavour = babelfish
            ? new SqlServerFlavour($"Babelfish for PostgreSQL {(reader.IsDBNull(1) ? "" : reader.GetString(1))}".TrimEnd(), IsBabelfish: true)
            : new SqlServerFlavour(
                $"{(edition == ManagedInstance ? "Azure SQL Managed Instance" : "SQL Server")} {(reader.IsDBNull(2) ? "" : reader.GetString(2))}".TrimEnd(),
                IsBabelfish: false);
        return Known.GetOrAdd(connection.DataSource, flavour);
    }

    /// <summary><c>SERVERPROPERTY('EngineEdition')</c> of Azure SQL Database.</summary>
    const int AzureSqlDatabase = 5;

    /// <summary><c>SERVERPROPERTY('EngineEdition')</c> of Azure SQL Managed Instance.</summary>
    const int ManagedInstance = 8;
}

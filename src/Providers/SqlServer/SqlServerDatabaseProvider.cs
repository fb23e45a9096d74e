using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Linq2DbTestKit.Internal;
using LinqToDB.DataProvider;
using LinqToDB.DataProvider.SqlServer;
using Microsoft.Data.SqlClient;

namespace Linq2DbTestKit.SqlServer;

/// <summary>
/// SQL Server through Microsoft.Data.SqlClient. Application transactions map to <c>SAVE TRANSACTION n</c> and their
/// rollback to <c>ROLLBACK TRANSACTION n</c>; their commit releases nothing, as SQL Server has no release.
/// </summary>
/// <remarks>
/// <para>
/// Every command runs with the test's <c>SqlTransaction</c>, which SqlClient requires. Some errors make the server end
/// the whole transaction (a deadlock, <c>XACT_ABORT</c>, a doomed transaction at the end of its batch); SqlClient then
/// lets go of it, and later commands would run in autocommit. The kit checks after every statement and stops the test,
/// naming the statement.
/// </para>
/// <para>
/// The kit creates the run's database with <c>READ_COMMITTED_SNAPSHOT ON</c>, so that tests running in parallel read
/// around each other's uncommitted rows instead of waiting for them, as PostgreSQL's readers do.
/// </para>
/// <para>
/// linq2db hands <c>SqlBulkCopy</c> only a transaction the application began: outside one, the kit begins one for the
/// copy (a savepoint), so that provider-specific bulk copy always runs natively, in the test's transaction.
/// </para>
/// </remarks>
public sealed class SqlServerDatabaseProvider : DatabaseProvider
{
    /// <summary>The most characters SQL Server allows in a savepoint name.</summary>
    public const int MaxSavepointNameLength = 32;

    /// <summary>The one instance.</summary>
    public static readonly SqlServerDatabaseProvider Instance = new();

    SqlServerDatabaseProvider()
    {
    }

    /// <inheritdoc />
    public override string Name => "sqlserver";

    /// <inheritdoc />
    public override string DisplayName => "SQL Server";

    /// <inheritdoc />
    public override string ConnectionVariable => "TESTKIT_SQLSERVER_CONNECTION";

    /// <inheritdoc />
    /// <value><c>Server=127.0.0.1,1433;User ID=sa;Password=TestKit-Passw0rd;TrustServerCertificate=True;Database=master</c>:
    /// the server of <c>docker/compose.yml</c>.</value>
    public override string DefaultConnectionString => "Server=127.0.0.1,1433;User ID=sa;Password=TestKit-Passw0rd;TrustServerCertificate=True;Database=master";

    internal override string StartServerHint =>
        $"or let the kit start one in a container: it needs a Docker engine, and {TestKitEnvironment.StartServerVariable} must not be off";

    /// <remarks>A container when a Docker engine answers (Testcontainers). SQL Server has no binaries the kit could start on its own.</remarks>
    internal override async Task<ThrowawayServer> StartServerAsync(ServerStart mode, CancellationToken cancellationToken)
    {
        string reason;
        if (mode is ServerStart.Auto or ServerStart.Docker)
        {
            try
            {
                return await ContainerSqlServer.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DotNet.Testcontainers.Builders.DockerUnavailableException exception)
            {
                reason = $"it tried a container, and no Docker engine answers ({exception.Message.Split('\n')[0].Trim()})";
            }
        }
        else
        {
            reason = "SQL Server has no server binaries the kit can start; only a container";
        }

        throw new TestKitConfigurationException(
            $"The kit could not start a throwaway SQL Server for the run ({TestKitEnvironment.StartServerVariable}={mode.ToString().ToLowerInvariant()}): {reason}. " +
            $"Start a Docker engine, or set {ConnectionVariable} to a server that runs (docker compose -f docker/compose.yml up --wait sqlserver, in this repository).");
    }

    internal override bool CanReleaseSavepoints => false;

    internal override bool FailedStatementAbortsTransaction => false;

    internal override bool BulkCopyNeedsTransaction => true;

    /// <remarks>
    /// SQL Server's <c>COMMIT</c> inside an outer <c>BEGIN TRANSACTION</c> only counts <c>@@TRANCOUNT</c> down. A scope
    /// opens the test's transaction twice: a <c>COMMIT</c> the kit cannot see before it runs (dynamic SQL, a stored
    /// procedure, SQL text in a parameter) then commits nothing. The server reports it (error 266 at the end of the
    /// <c>EXEC</c> or procedure); the kit then finds the count short, opens the transaction again, and fails the test as
    /// a divergence from production. Application code reads <c>@@TRANCOUNT</c> as 2 outside its own transactions.
    /// </remarks>
    internal override int ScopeTransactionDepth => 2;

    internal override string DeepenTransaction => "BEGIN TRANSACTION";

    internal override string TransactionDepthQuery => "SELECT @@TRANCOUNT";

    internal override string EndOfScopeBatch => "SELECT @@TRANCOUNT; IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

    /// <remarks>
    /// <c>sp_getapplock</c> with <c>@LockOwner = 'Session'</c>: T-SQL cannot list a session's application locks without
    /// the permission to read <c>sys.dm_tran_locks</c>, and SqlClient resets a pooled connection, releasing them, only
    /// when it is next used. A call inside a procedure of the application's is not seen here.
    /// </remarks>
    internal override bool MayTakeSessionLock(string sql) => sql.Contains("sp_getapplock", StringComparison.OrdinalIgnoreCase);

    internal override ParsedConnectionString Parse(string connectionString, string source)
    {
        SqlConnectionStringBuilder builder;
        try
        {
            builder = new SqlConnectionStringBuilder(connectionString);
        }
        catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            throw new TestKitConfigurationException(
                $"{source} is not a valid SQL Server connection string: {Secrets.ScrubUnparsed(exception.Message, connectionString)}. " +
                "Write it as keyword=value pairs separated by ';', with double quotes around a value that contains ';', for example " +
                $"'{DefaultConnectionString.Replace("Password=TestKit-Passw0rd", "Password=…", StringComparison.Ordinal)}'.");
        }

        if (string.IsNullOrWhiteSpace(builder.DataSource))
            throw new TestKitConfigurationException($"{source} names no server. Add Server=<host>,<port> to it, for example Server=127.0.0.1,1433.");

        var password = builder.Password;
        if (!string.IsNullOrEmpty(password))
            builder.Password = Secrets.Mask;
        var (host, port) = Endpoint(builder.DataSource);
        return new ParsedConnectionString(
            builder.DataSource,
            builder.IntegratedSecurity ? null : builder.UserID,
            password,
            string.IsNullOrEmpty(builder.InitialCatalog) ? null : builder.InitialCatalog,
            builder.ConnectionString,
            host,
            port);
    }

    /// <summary>Host and port of a data source: <c>tcp:host,port</c>, <c>host\instance</c> (port 1433 is a guess there), <c>(local)</c>.</summary>
    static (string Host, int Port) Endpoint(string dataSource)
    {
        var source = dataSource.StartsWith("tcp:", StringComparison.OrdinalIgnoreCase) ? dataSource[4..] : dataSource;
        var comma = source.LastIndexOf(',');
        var host = comma < 0 ? source : source[..comma];
        var port = comma >= 0 && int.TryParse(source[(comma + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var given) ? given : 1433;
        host = host.Split('\\')[0];
        return (host is "." or "(local)" or "localhost" ? "127.0.0.1" : host, port);
    }

    internal override string ForDatabase(string connectionString, string? database, string? applicationName, bool kitConnection = true)
    {
        var builder = new SqlConnectionStringBuilder(connectionString);
        if (database is not null)
            builder.InitialCatalog = database;
        if (applicationName is not null)
            builder.ApplicationName = applicationName;
        // The kit's own connections must never join an ambient TransactionScope: the test's transaction stays the outermost.
        if (kitConnection)
            builder.Enlist = false;
        return builder.ConnectionString;
    }

    internal override DbConnection CreateConnection(string connectionString) => new SqlConnection(connectionString);


    internal override string? DatabaseOf(string connectionString)
    {
        try
        {
            return new SqlConnectionStringBuilder(connectionString).InitialCatalog is { Length: > 0 } database ? database : null;
        }
        catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            return null;
        }
    }

    internal override async Task<string?> DescribeServerAsync(DbConnection openConnection, CancellationToken cancellationToken) =>
        (await SqlServerFlavour.OfAsync(openConnection, cancellationToken).ConfigureAwait(false)).Description;

    internal override IDataProvider DetectLinqToDBProvider(DbConnection openConnection) =>
        SqlServerTools.GetDataProvider(SqlServerVersion.AutoDetect, SqlServerProvider.MicrosoftDataSqlClient, connection: openConnection);

    internal override string SavepointName(long number)
    {
        var name = $"testkit_{number}";
        return name.Length <= MaxSavepointNameLength
            ? name
            : throw new InvalidOperationException($"Savepoint name {name} is longer than SQL Server's {MaxSavepointNameLength} characters.");
    }

    /// <remarks>
    /// SqlClient sends a savepoint name in a TDS request without checking its length, and the server may cut it short
    /// rather than refuse it: two long names could then name one savepoint. The kit applies SQL Server's limit itself.
    /// </remarks>
    internal override void CheckSavepointName(string name)
    {
        if (name.Length > MaxSavepointNameLength)
        {
            throw new ArgumentException(
                $"The savepoint name '{name}' has {name.Length} characters; SQL Server allows at most {MaxSavepointNameLength} (SAVE TRANSACTION). " +
                "Outside a test the name could be cut short silently; use a shorter name.", nameof(name));
        }
    }

    internal override string? SavepointStatement(SavepointAction action, string name) => action switch
    {
        SavepointAction.Save => $"SAVE TRANSACTION {name}",
        SavepointAction.Rollback => $"ROLLBACK TRANSACTION {name}",
        _ => null,
    };

    internal override SqlDialect Dialect => SqlDialect.TSql;

    internal override async Task<bool> DatabaseExistsAsync(DbConnection admin, string database, CancellationToken cancellationToken)
    {
        await using var command = new SqlCommand("SELECT DB_ID(@name)", (SqlConnection)admin);
        command.Parameters.AddWithValue("name", database);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not (null or DBNull);
    }

    /// <remarks>
    /// <para>
    /// <c>CREATE DATABASE</c> cannot run in a transaction, so creation is made all-or-nothing by hand: when setting it up
    /// or marking it fails, the database is dropped at once, before anything else can use it. A database without the
    /// kit's mark would never be dropped by the kit.
    /// </para>
    /// <para>
    /// The mark is a row of <c>testkit.run_mark</c> in the new database, written on the admin connection switched to it:
    /// what works on every flavour (Babelfish reads no database's extended properties back, and creates nothing through
    /// three-part names).
    /// </para>
    /// </remarks>
    internal override async Task CreateDatabaseAsync(DbConnection admin, string database, string marker, CancellationToken cancellationToken)
    {
        var flavour = await SqlServerFlavour.OfAsync(admin, cancellationToken).ConfigureAwait(false);
        var name = Quote(database);
        await RunDatabaseStatementAsync(admin, $"CREATE DATABASE {name}", cancellationToken).ConfigureAwait(false);
        try
        {
            // Babelfish's readers never wait for writers (PostgreSQL's MVCC): what READ_COMMITTED_SNAPSHOT gives SQL Server.
            if (flavour.ReadsCommittedSnapshotAlways is false)
                await admin.RunAsync($"ALTER DATABASE {name} SET READ_COMMITTED_SNAPSHOT ON", cancellationToken).ConfigureAwait(false);
            await InDatabaseAsync(admin, database, async () =>
            {
                await using var mark = new SqlCommand(
                    $"EXEC (N'CREATE SCHEMA {KitSchema}'); CREATE TABLE {KitSchema}.{MarkTable} (mark nvarchar(200) NOT NULL); INSERT INTO {KitSchema}.{MarkTable} VALUES (@marker);",
                    (SqlConnection)admin);
                mark.Parameters.AddWithValue("marker", marker);
                await mark.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }).ConfigureAwait(false);
        }
        catch
        {
            await DropDatabaseAsync(admin, database, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Runs <paramref name="action"/> with <paramref name="admin"/> switched to <paramref name="database"/>, and switches it back.</summary>
    static async Task InDatabaseAsync(DbConnection admin, string database, Func<Task> action)
    {
        var home = admin.Database;
        await admin.ChangeDatabaseAsync(database).ConfigureAwait(false);
        try
        {
            await action().ConfigureAwait(false);
        }
        finally
        {
            await admin.ChangeDatabaseAsync(home).ConfigureAwait(false);
        }
    }

    internal override async Task<string?> ReadMarkerAsync(DbConnection admin, string database, CancellationToken cancellationToken)
    {
        var table = $"{Quote(database)}.{KitSchema}.{MarkTable}";
        await using var command = new SqlCommand(
            $"IF OBJECT_ID(N'{table.Replace("'", "''", StringComparison.Ordinal)}') IS NOT NULL SELECT TOP (1) mark FROM {table}", (SqlConnection)admin);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    /// <remarks>
    /// <para>
    /// SQL Server: <c>SINGLE_USER WITH ROLLBACK IMMEDIATE</c> closes every other session on the database, whatever it was
    /// doing. A connection that opens between it and the <c>DROP</c> takes the single slot, and the drop fails with error
    /// 3702 or 5064: the kit tries again, which closes that session too, and leaves the database to everyone again if it
    /// gives up.
    /// </para>
    /// <para>
    /// Babelfish has no <c>ALTER DATABASE</c>: the kit ends the database's other sessions with <c>KILL</c>, waits until
    /// they are gone (a killed session still counts as in the database for a moment after <c>KILL</c> returns, so a
    /// <c>DROP</c> right after it fails whenever a session was there), then drops it, and tries again when a session came
    /// back in between.
    /// </para>
    /// </remarks>
    internal override async Task DropDatabaseAsync(DbConnection admin, string database, CancellationToken cancellationToken)
    {
        var flavour = await SqlServerFlavour.OfAsync(admin, cancellationToken).ConfigureAwait(false);
        var name = Quote(database);
        var literal = database.Replace("'", "''", StringComparison.Ordinal);
        var drop = flavour.HasAlterDatabase
            ? $"IF DB_ID(N'{literal}') IS NOT NULL BEGIN ALTER DATABASE {name} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE {name}; END"
            : $"IF DB_ID(N'{literal}') IS NOT NULL DROP DATABASE {name}";
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (!flavour.HasAlterDatabase)
                    await EndOtherSessionsAsync(admin, literal, cancellationToken).ConfigureAwait(false);
                await admin.RunAsync(drop, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (SqlException exception) when ((IsDatabaseInUse(exception) || IsConcurrentCatalogUpdate(exception)) && attempt < DropAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken).ConfigureAwait(false);
            }
            catch (SqlException exception) when (IsDatabaseInUse(exception))
            {
                if (flavour.HasAlterDatabase)
                    await admin.RunAsync($"IF DB_ID(N'{literal}') IS NOT NULL ALTER DATABASE {name} SET MULTI_USER", CancellationToken.None).ConfigureAwait(false);
                throw new TestKitConfigurationException(
                    $"Could not drop database '{database}' after {DropAttempts} attempts: another session kept taking it ({exception.Message}). " +
                    "It is left to every user again; drop it by hand once whatever connects to it has stopped.", exception);
            }
        }
    }

    /// <summary>
    /// Babelfish: <c>KILL</c>s every other session on the database until none is left, for at most two seconds; a session
    /// that keeps coming back fails the drop that follows, which is tried again.
    /// </summary>
    static async Task EndOtherSessionsAsync(DbConnection admin, string literal, CancellationToken cancellationToken)
    {
        var others = $"FROM sys.dm_exec_sessions WHERE database_id = DB_ID(N'{literal}') AND session_id IS NOT NULL AND session_id <> @@SPID";
        var kill = $"""
                    DECLARE @session int, @kill nvarchar(40);
                    DECLARE sessions CURSOR LOCAL FAST_FORWARD FOR SELECT session_id {others};
                    OPEN sessions; FETCH NEXT FROM sessions INTO @session;
                    WHILE @@FETCH_STATUS = 0
                    BEGIN
                        SET @kill = N'KILL ' + CAST(@session AS nvarchar(20)); EXEC (@kill);
                        FETCH NEXT FROM sessions INTO @session;
                    END;
                    CLOSE sessions; DEALLOCATE sessions;
                    SELECT COUNT(*) {others};
                    """;
        var waited = Stopwatch.StartNew();
        while (true)
        {
            await using var command = admin.CreateCommand();
            command.CommandText = kill;
            var left = Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            if (left == 0 || waited.Elapsed > TimeSpan.FromSeconds(2))
                return;
            await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether the drop failed because a session uses the database: SQL Server's 3702 (in use) or 5064 (single-user,
    /// and a session took the slot), or Babelfish's refusal, whose number is its generic one; or because a session the
    /// drop listed ended before its <c>KILL</c> (SQL Server's 6106, Babelfish's message): the next attempt lists again.
    /// </summary>
    static bool IsDatabaseInUse(SqlException exception) =>
        exception.Number is 3702 or 5064 or 6106
        || exception.Message.Contains("is currently in use", StringComparison.Ordinal)
        || exception.Message.Contains("is not an active process ID", StringComparison.Ordinal);

    const int DropAttempts = 5;

    /// <summary>
    /// Babelfish: a database's creation or drop updated a row of PostgreSQL's catalog (its roles, say) that another
    /// session's creation or drop updated at the same time, as two test runs on one server do. Nothing was done; the
    /// statement succeeds when tried again.
    /// </summary>
    static bool IsConcurrentCatalogUpdate(SqlException exception) =>
        exception.Message.Contains("tuple concurrently updated", StringComparison.Ordinal);

    const int CatalogUpdateAttempts = 5;

    /// <summary>Runs <paramref name="sql"/>, trying it again while it fails on <see cref="IsConcurrentCatalogUpdate"/>.</summary>
    static async Task RunDatabaseStatementAsync(DbConnection admin, string sql, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await admin.RunAsync(sql, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (SqlException exception) when (IsConcurrentCatalogUpdate(exception) && attempt < CatalogUpdateAttempts)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <remarks>
    /// SqlClient reports each command to its <c>SqlClientDiagnosticListener</c>, with the command itself as the payload's
    /// <c>Command</c>: its connection names the application and the database. The listener's events come in the flow that
    /// ran the command.
    /// </remarks>
    internal override IDisposable ObserveStatements(Action<ObservedStatement> onStatement) =>
        DiagnosticListener.AllListeners.Subscribe(new SqlClientObserver(onStatement));

    internal override bool IsLinqToDBVersionProbe(string sql) =>
        sql.Equals("SELECT compatibility_level FROM sys.databases WHERE name = db_name()", StringComparison.Ordinal);

    /// <remarks>
    /// A connection string cannot limit SQL Server's lock waits: the command's timeout ends them (error 1222 where the
    /// code set <c>LOCK_TIMEOUT</c> itself).
    /// </remarks>
    internal override bool EndedALockWait(string error) =>
        error.Contains("Execution Timeout Expired", StringComparison.Ordinal) || error.Contains("Lock request time out period exceeded", StringComparison.Ordinal);

    /// <summary>Subscribes to SqlClient's listener when it appears, and turns its command events into observed statements.</summary>
    sealed class SqlClientObserver(Action<ObservedStatement> onStatement) : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>
    {
        const string CommandAfter = "Microsoft.Data.SqlClient.WriteCommandAfter";
        const string CommandError = "Microsoft.Data.SqlClient.WriteCommandError";
        const string CommandBefore = "Microsoft.Data.SqlClient.WriteCommandBefore";

        static readonly ConcurrentDictionary<string, string?> ApplicationNames = new(StringComparer.Ordinal);

        public void OnNext(DiagnosticListener listener)
        {
            if (listener.Name == "SqlClientDiagnosticListener")
                listener.Subscribe(this, name => TestScope.Current is not null && !TestScope.RunsOwnStatement && name is CommandBefore or CommandAfter or CommandError);
        }

        public void OnNext(KeyValuePair<string, object?> diagnostic)
        {
            if (diagnostic.Key is not (CommandAfter or CommandError) || TestScope.Current is null || TestScope.RunsOwnStatement)
                return;
            if (Property(diagnostic.Value, "Command") is not SqlCommand { Connection: { } connection } command)
                return;

            var error = diagnostic.Key == CommandError ? (Property(diagnostic.Value, "Exception") as Exception)?.Message ?? "failed" : null;
            var applicationName = ApplicationNames.GetOrAdd(connection.ConnectionString, static text =>
            {
                try
                {
                    return new SqlConnectionStringBuilder(text).ApplicationName;
                }
                catch (ArgumentException)
                {
                    return null;
                }
            });
            onStatement(new ObservedStatement(applicationName, connection.Database, command.CommandText, error));
        }

        /// <summary>A value of SqlClient's payload: a list of name and value pairs since SqlClient 5, an anonymous object before.</summary>
        static object? Property(object? payload, string name)
        {
            if (payload is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var pair in pairs)
                {
                    if (pair.Key == name)
                        return pair.Value;
                }

                return null;
            }

            return payload?.GetType().GetProperty(name)?.GetValue(payload);
        }

        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }
    }

    /// <remarks>
    /// <para>
    /// Each row's digest is a SHA-256 of its values in full, as text (long <c>nvarchar(max)</c>, <c>xml</c>), each with its
    /// length, so that no value can run into the next; binary values (and spatial ones) count by a 96-bit part of their own
    /// SHA-256. The table's digest adds up five 24-bit parts of the rows' digests (positive on every flavour, and no sum
    /// overflows), which does not depend on the order of the rows; unlike an XOR, two rows that change alike do not cancel.
    /// </para>
    /// <para>
    /// Left out are the columns the server writes itself, which a correct reset cannot restore: <c>rowversion</c>,
    /// computed columns and the period columns of temporal tables. The kit's own schema is left out too, and so are the
    /// history tables of temporal tables, which only the server writes. What is read
    /// works on SQL Server 2016 and later and on Babelfish, where <c>+</c> adds binary values as numbers and binary values
    /// turn into no text: no binary value is ever joined to another or turned into text.
    /// </para>
    /// </remarks>
    internal override string ListTablesSql =>
        "SELECT QUOTENAME(s.name) + N'.' + QUOTENAME(t.name), QUOTENAME(c.name), TYPE_NAME(c.system_type_id) " +
        "FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id " +
        "LEFT JOIN sys.columns c ON c.object_id = t.object_id AND c.is_computed = 0 AND c.generated_always_type = 0 " +
        "AND TYPE_NAME(c.system_type_id) NOT IN (N'timestamp', N'rowversion') " +
        "WHERE t.is_ms_shipped = 0 AND s.name <> N'testkit' AND t.temporal_type <> 1 ORDER BY 1, c.column_id";

    internal override string ListServerObjectsSql =>
        "SELECT N'database', name FROM sys.databases UNION ALL SELECT N'login', name FROM sys.server_principals WHERE type IN ('S', 'U', 'G', 'E', 'X')";

    internal override string TableContentsSql(string table, IReadOnlyList<TableColumn> columns, int index) =>
        columns.Count == 0
            ? $"SELECT {index}, COUNT_BIG(*), N'0' FROM {table}"
            : $"SELECT {index}, COUNT_BIG(*), {RowsDigest("h")} FROM (SELECT HASHBYTES('SHA2_256', {RowText(columns, alias: null)}) AS h FROM {table}) AS table_rows";

    /// <summary>The digest of the rows whose SHA-256 is <paramref name="rowHash"/>: five sums of 24-bit parts of it, as text.</summary>
    internal static string RowsDigest(string rowHash) =>
        $"CAST(CONCAT({string.Join(", N'.', ", Enumerable.Range(0, 5).Select(part => $"COALESCE(SUM(CAST(CAST(SUBSTRING({rowHash}, {part * 3 + 1}, 3) AS int) AS bigint)), 0)"))}) AS nvarchar(100))";

    /// <summary>A row's values as one text, each with its length so that none can run into the next; <see langword="null"/> values as <c>~</c>.</summary>
    internal static string RowText(IEnumerable<TableColumn> columns, string? alias) =>
        string.Join(" + ", columns.Select(column =>
        {
            var text = TextForDigest(alias is null ? column.Name : $"{alias}.{column.Name}", column.Type);
            return $"COALESCE(CAST(DATALENGTH({text}) AS nvarchar(20)) + N':' + {text}, N'~')";
        }));

    /// <summary>A column's value as text with nothing lost; <see langword="null"/> stays null. Binary values count by 96 bits of their SHA-256.</summary>
    static string TextForDigest(string column, string type) => type switch
    {
        "binary" or "varbinary" or "image" or "geography" or "geometry" or "hierarchyid" or "sql_variant" =>
            $"CASE WHEN {column} IS NULL THEN NULL ELSE CONCAT({string.Join(", N',', ", Enumerable.Range(0, 4).Select(part => $"CAST(SUBSTRING(HASHBYTES('SHA2_256', CAST({column} AS varbinary(max))), {part * 3 + 1}, 3) AS int)"))}) END",
        "float" or "real" => $"CONVERT(nvarchar(max), {column}, 3)",
        "money" or "smallmoney" => $"CONVERT(nvarchar(max), CAST({column} AS decimal(19, 4)))",
        "datetime" or "datetime2" or "smalldatetime" or "datetimeoffset" or "time" or "date" => $"CONVERT(nvarchar(max), {column}, 126)",
        "xml" or "text" or "ntext" => $"CAST({column} AS nvarchar(max))",
        _ => $"CONVERT(nvarchar(max), {column})",
    };

    internal override string TemplatesUnsupported =>
        "SQL Server has no fast writable copy of a database (CREATE DATABASE … AS COPY OF exists only on Azure SQL Database, and BACKUP with RESTORE " +
        "needs file paths on the server and takes seconds), so every run applies its schema itself";

    internal override Task<ChangeTracker> InstallChangeTrackingAsync(DbConnection connection, CancellationToken cancellationToken) =>
        SqlServerChangeTracker.InstallAsync((SqlConnection)connection, cancellationToken);

    internal override void ClearPool(string connectionString)
    {
        using var connection = new SqlConnection(connectionString);
        SqlConnection.ClearPool(connection);
    }

    internal override ConnectFailure ClassifyConnectFailure(Exception exception)
    {
        if (exception.Find<SqlException>() is { } sql)
        {
            switch (sql.Number)
            {
                case 18456:
                    return ConnectFailure.AuthenticationFailed;
                case 4060 or 911:
                    return ConnectFailure.DatabaseMissing;
                case -2:
                    return ConnectFailure.Timeout;
                case 11001:
                    return ConnectFailure.UnknownHost;
            }
        }

        return exception.Find<SocketException>()?.SocketErrorCode switch
        {
            SocketError.ConnectionRefused or SocketError.NetworkUnreachable or SocketError.HostUnreachable or SocketError.AddressNotAvailable => ConnectFailure.Unreachable,
            SocketError.TimedOut => ConnectFailure.Timeout,
            SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => ConnectFailure.UnknownHost,
            _ => exception.Find<SqlException>()?.Number is 2 or 26 or 40 or 53 or 10061 ? ConnectFailure.Unreachable : ConnectFailure.Other,
        };
    }

    /// <remarks>
    /// Errors of severity 20 and above end the connection. Any other error ends the statement, and sometimes the
    /// transaction (a deadlock, <c>XACT_ABORT</c>, a doomed transaction at the end of its batch): SqlClient then lets go
    /// of the transaction, which the kit sees after every statement.
    /// </remarks>
    internal override StatementFailure ClassifyStatementFailure(Exception exception, DbConnection connection)
    {
        if (exception.Find<SqlException>() is { Class: >= 20 })
            return StatementFailure.ConnectionLost;
        if (connection.State is System.Data.ConnectionState.Broken or System.Data.ConnectionState.Closed)
            return StatementFailure.ConnectionLost;
        if (exception is not SqlException && exception.Find<IOException>() is not null)
            return StatementFailure.ConnectionLost;
        return StatementFailure.StatementOnly;
    }

    /// <summary>The kit's own schema in the run's database: its mark, change tracking, the prepared state.</summary>
    internal const string KitSchema = "testkit";

    const string MarkTable = "run_mark";


    static string Quote(string identifier) => $"[{identifier.Replace("]", "]]", StringComparison.Ordinal)}]";

}

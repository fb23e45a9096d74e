using System.Globalization;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Net.Sockets;
using Linq2DbTestKit.Internal;
using LinqToDB.DataProvider;
using LinqToDB.DataProvider.PostgreSQL;
using Npgsql;

namespace Linq2DbTestKit.PostgreSql;

/// <summary>
/// PostgreSQL through Npgsql. Application transactions map to <c>SAVEPOINT n</c>, their commit to
/// <c>RELEASE SAVEPOINT n</c> and their rollback to <c>ROLLBACK TO SAVEPOINT n</c>.
/// </summary>
/// <remarks>
/// PostgreSQL aborts the whole transaction when a statement fails: nothing more runs until a rollback to a savepoint
/// taken before the failure. Code that expects a database error must catch it inside its own transaction and roll that
/// back, as it would have to outside a test; the kit reports which statement aborted a test's transaction.
/// </remarks>
public sealed class PostgreSqlDatabaseProvider : DatabaseProvider
{
    /// <summary>The one instance.</summary>
    public static readonly PostgreSqlDatabaseProvider Instance = new();

    PostgreSqlDatabaseProvider()
    {
    }

    /// <inheritdoc />
    public override string Name => "postgres";

    /// <inheritdoc />
    public override string DisplayName => "PostgreSQL";

    /// <inheritdoc />
    public override string ConnectionVariable => "TESTKIT_POSTGRES_CONNECTION";

    /// <inheritdoc />
    /// <value><c>Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;Database=postgres</c>: a local server as the
    /// <c>postgres</c> Docker image runs it (and this repository's <c>docker/compose.yml</c>).</value>
    public override string DefaultConnectionString => "Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;Database=postgres";

    internal override string StartServerHint =>
        $"or let the kit start one: it needs a Docker engine, or PostgreSQL's server binaries (initdb, pg_ctl) installed; {TestKitEnvironment.StartServerVariable} must not be off";

    /// <remarks>
    /// A container when a Docker engine answers (Testcontainers, image <c>postgres:15</c>); otherwise, a cluster from the
    /// machine's own binaries: <c>TESTKIT_POSTGRES_BIN</c> when set, else <c>PATH</c> and the usual install directories.
    /// </remarks>
    internal override Task<ThrowawayServer> StartServerAsync(ServerStart mode, CancellationToken cancellationToken) =>
        StartServerAsync(mode, Environment.GetEnvironmentVariable, cancellationToken);

    internal async Task<ThrowawayServer> StartServerAsync(ServerStart mode, Func<string, string?> read, CancellationToken cancellationToken)
    {
        var tried = new List<string>();
        if (mode is ServerStart.Auto or ServerStart.Docker)
        {
            try
            {
                return await ContainerPostgreSqlServer.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DotNet.Testcontainers.Builders.DockerUnavailableException exception)
            {
                tried.Add($"a container: no Docker engine answers ({exception.Message.Split('\n')[0].Trim()})");
            }
        }

        if (mode is ServerStart.Auto or ServerStart.LocalBinaries)
        {
            var (binaries, searched) = LocalPostgreSqlServer.FindBinaries(read);
            if (binaries is not null)
                return await LocalPostgreSqlServer.StartAsync(binaries, cancellationToken).ConfigureAwait(false);
            tried.Add($"PostgreSQL's own server binaries: initdb and pg_ctl are not in {searched}");
        }

        throw new TestKitConfigurationException(
            $"The kit could not start a throwaway PostgreSQL server for the run ({TestKitEnvironment.StartServerVariable}={mode.ToString().ToLowerInvariant()}). It tried {string.Join("; then ", tried)}. " +
            $"Install PostgreSQL's server (for example 'apt-get install postgresql', which puts initdb in /usr/lib/postgresql/<version>/bin), or start a Docker engine, " +
            $"or set {ConnectionVariable} to a server that runs.");
    }

    internal override bool CanReleaseSavepoints => true;

    internal override bool FailedStatementAbortsTransaction => true;

    internal override ParsedConnectionString Parse(string connectionString, string source)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            throw new TestKitConfigurationException(
                $"{source} is not a valid PostgreSQL connection string: {Secrets.ScrubUnparsed(exception.Message, connectionString)}. " +
                $"Write it as keyword=value pairs separated by ';', with double quotes around a value that contains ';', for example '{DefaultConnectionString.Replace("Password=postgres", "Password=…", StringComparison.Ordinal)}'.");
        }

        if (string.IsNullOrWhiteSpace(builder.Host))
            throw new TestKitConfigurationException($"{source} names no Host. Add Host=<server> to it, for example Host=127.0.0.1.");

        var password = builder.Password;
        if (!string.IsNullOrEmpty(password))
            builder.Password = Secrets.Mask;
        return new ParsedConnectionString($"{builder.Host}:{builder.Port}", builder.Username, password, builder.Database, builder.ConnectionString, builder.Host, builder.Port);
    }

    internal override string ForDatabase(string connectionString, string? database, string? applicationName, bool kitConnection = true)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (database is not null)
            builder.Database = database;
        if (applicationName is not null)
            builder.ApplicationName = applicationName;
        // The kit's own connections must never join an ambient TransactionScope: the test's transaction stays the outermost.
        if (kitConnection)
            builder.Enlist = false;
        return builder.ConnectionString;
    }

    internal override DbConnection CreateConnection(string connectionString) => new NpgsqlConnection(connectionString);

    internal override bool LimitsLockWaits => true;

    internal override string LimitLockWaits(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var limit = $"-c lock_timeout={(int)TestDatabase.LockWaitLimit.TotalMilliseconds}";
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? limit : $"{builder.Options} {limit}";
        return builder.ConnectionString;
    }

    internal override bool EndedALockWait(string error) =>
        error.Contains(PostgresErrorCodes.LockNotAvailable, StringComparison.Ordinal) || error.Contains("lock timeout", StringComparison.Ordinal);

    internal override string? DatabaseOf(string connectionString)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(connectionString).Database;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <remarks>Npgsql then skips loading the database's types, which the kit's queries of built-in types do not need.</remarks>
    internal override string ForKitQueries(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { ServerCompatibilityMode = ServerCompatibilityMode.NoTypeLoading }.ConnectionString;

    internal override bool DetectsOnAnyOpenConnection => true;

    internal override IDataProvider DetectLinqToDBProvider(DbConnection openConnection) =>
        PostgreSQLTools.GetDataProvider(PostgreSQLVersion.AutoDetect, connection: openConnection);

    internal override string SavepointName(long number) => $"testkit_{number}";

    /// <remarks>
    /// Npgsql's <c>Save</c> sends nothing: it prepends the <c>SAVEPOINT</c> to the next command. When the transaction is
    /// aborted, the server refuses it there, and Npgsql then takes the transaction for completed while the server still
    /// holds it open. The kit sends its savepoints as statements of their own, so that a refusal comes back at once.
    /// </remarks>
    internal override string? SavepointSentAsStatement(SavepointAction action, string name) =>
        action == SavepointAction.Save ? $"SAVEPOINT {QuoteSavepoint(name)}" : null;

    /// <summary>A savepoint name as Npgsql's own API quotes it: as written, unless it is not all lower case or has characters that need quotes.</summary>
    static string QuoteSavepoint(string name) =>
        name.Length > 0 && (name[0] == '_' || char.IsLower(name[0])) && name.All(c => char.IsLower(c) || char.IsDigit(c) || c is '_' or '$')
            ? name
            : $"\"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";

    internal override string? SavepointStatement(SavepointAction action, string name) => action switch
    {
        SavepointAction.Save => $"SAVEPOINT {name}",
        SavepointAction.Rollback => $"ROLLBACK TO SAVEPOINT {name}",
        _ => $"RELEASE SAVEPOINT {name}",
    };

    internal override SqlDialect Dialect => SqlDialect.PostgreSql;

    /// <remarks>
    /// With <c>standard_conforming_strings</c> off, a backslash escapes a quote in a plain string literal too: the kit
    /// reads the session's setting from what the server reports to Npgsql, so a <c>SET</c> of it is followed.
    /// </remarks>
    internal override StatementControl ClassifyStatement(string sql, DbConnection connection)
    {
        var standard = !(connection is NpgsqlConnection { State: System.Data.ConnectionState.Open } npgsql
            && npgsql.PostgresParameters.TryGetValue("standard_conforming_strings", out var setting)
            && setting == "off");
        return TransactionStatements.Classify(sql, SqlDialect.PostgreSql, standard);
    }

    /// <remarks>
    /// The check runs in a savepoint of its own that is always rolled back: <c>SET CONSTRAINTS ALL IMMEDIATE</c> checks
    /// every pending deferred constraint now, and the rollback of the check's savepoint restores their deferral for what
    /// the test does next.
    /// </remarks>
    internal override string CheckDeferredConstraintsAndRelease(string savepoint) =>
        $"SAVEPOINT testkit_check; SET CONSTRAINTS ALL IMMEDIATE; ROLLBACK TO SAVEPOINT testkit_check; RELEASE SAVEPOINT testkit_check; RELEASE SAVEPOINT {savepoint}";

    /// <remarks>
    /// <para>
    /// A rollback leaves a session's advisory locks, prepared statements (SQL's <c>PREPARE</c>) and sequences'
    /// <c>currval</c> behind. Npgsql resets a pooled connection (<c>DISCARD ALL</c>) only with the first statement of its
    /// next use, so a lock would stay held by an idle pooled connection meanwhile. The scopes' connections therefore reset
    /// in the batch that rolls back, <c>ROLLBACK; DISCARD ALL</c>, and Npgsql's pool is told not to reset them again
    /// (<c>No Reset On Close</c>): the session is as new the moment the test ends, at one statement per test less than a
    /// rollback, an unlock and the pool's reset.
    /// </para>
    /// <para>
    /// Not where the connection string turns on Npgsql's automatic preparation (<c>Max Auto Prepare</c>): Npgsql keeps
    /// those statements across uses of a pooled connection, and <c>DISCARD ALL</c> would deallocate them behind its back.
    /// There the batch releases the advisory locks, and Npgsql resets the rest on the connection's next use.
    /// </para>
    /// </remarks>
    internal override ScopeSessions ForScopes(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.MaxAutoPrepare > 0)
            return new ScopeSessions(connectionString, "ROLLBACK; SELECT pg_advisory_unlock_all()", EndBatchResetsSession: false);

        builder.NoResetOnClose = true;
        return new ScopeSessions(builder.ConnectionString, "ROLLBACK; DISCARD ALL", EndBatchResetsSession: true);
    }

    internal override async Task<bool> DatabaseExistsAsync(DbConnection admin, string database, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", (NpgsqlConnection)admin);
        command.Parameters.AddWithValue("name", database);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null;
    }

    internal override Task CreateDatabaseAsync(DbConnection admin, string database, string marker, CancellationToken cancellationToken) =>
        CreateMarkedAsync(admin, $"CREATE DATABASE {Quote(database)}", database, marker, cancellationToken);

    internal override Task CreateDatabaseFromTemplateAsync(DbConnection admin, string database, string template, string marker, CancellationToken cancellationToken) =>
        CopyDatabaseAsync(admin, template, database, marker, cancellationToken);

    const string TemplateMark = "linq2db-testkit template ";
    const string SpareMark = "linq2db-testkit spare ";

    static string Spare(string template) => template + "_spare";

    internal override async Task<bool> TryClaimSpareAsync(DbConnection admin, string template, string fingerprint, string database, string marker, CancellationToken cancellationToken)
    {
        var spare = Spare(template);
        var mark = await ReadMarkerAsync(admin, spare, cancellationToken).ConfigureAwait(false);
        if (mark is null || !mark.StartsWith(SpareMark, StringComparison.Ordinal))
            return false;
        if (mark != SpareMark + fingerprint)
        {
            await DropDatabaseAsync(admin, spare, cancellationToken).ConfigureAwait(false);
            return false;
        }

        await admin.RunAsync($"ALTER DATABASE {Quote(spare)} RENAME TO {Quote(database)}", cancellationToken).ConfigureAwait(false);
        await admin.RunAsync($"COMMENT ON DATABASE {Quote(database)} IS '{marker.Replace("'", "''", StringComparison.Ordinal)}'", cancellationToken).ConfigureAwait(false);
        return true;
    }

    internal override async Task MakeSpareAsync(DbConnection admin, string template, string fingerprint, CancellationToken cancellationToken)
    {
        if (await DatabaseExistsAsync(admin, Spare(template), cancellationToken).ConfigureAwait(false))
            return;
        await CopyDatabaseAsync(admin, template, Spare(template), SpareMark + fingerprint, cancellationToken).ConfigureAwait(false);
    }

    internal override async Task<IAsyncDisposable> LockTemplateAsync(DbConnection admin, string template, bool closeConnection, Action<string>? progress, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended(@key, 0))", (NpgsqlConnection)admin);
        command.Parameters.AddWithValue("key", TemplateMark + template);
        var waiting = System.Diagnostics.Stopwatch.StartNew();
        var said = TimeSpan.Zero;
        while (!(bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
        {
            if (progress is not null && waiting.Elapsed - said >= TimeSpan.FromSeconds(said == TimeSpan.Zero ? 1 : 10))
            {
                said = waiting.Elapsed;
                progress(string.Create(CultureInfo.InvariantCulture,
                    $"waiting {waiting.Elapsed.TotalSeconds:0} s for another run on the server that builds or copies the schema template {template}"));
            }

            await Task.Delay(250, cancellationToken).ConfigureAwait(false);
        }

        return new TemplateLock((NpgsqlConnection)admin, TemplateMark + template, closeConnection);
    }

    /// <summary>The advisory lock a run holds on its database's name while it runs: a marked run database nobody holds is a killed run's.</summary>
    static string RunLockKey(string database) => "linq2db-testkit run " + database;

    internal override async Task<IAsyncDisposable?> HoldRunAsync(string adminConnectionString, string database, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(adminConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT pg_advisory_lock(hashtextextended(@key, 0))", connection);
            command.Parameters.AddWithValue("key", RunLockKey(database));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return new TemplateLock(connection, RunLockKey(database), closeConnection: true);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    internal override async Task<IReadOnlyList<string>> DropDatabasesOfKilledRunsAsync(DbConnection admin, CancellationToken cancellationToken)
    {
        var candidates = new List<string>();
        await using (var list = new NpgsqlCommand(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE 'linq2db-testkit run %' AND datname LIKE 'testkit\\_%'", (NpgsqlConnection)admin))
        await using (var reader = await list.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                candidates.Add(reader.GetString(0));
        }

        var dropped = new List<string>();
        foreach (var database in candidates)
        {
            // A run takes its lock before it creates its database and holds it until it drops it: free, the run is gone.
            await using var take = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended(@key, 0))", (NpgsqlConnection)admin);
            take.Parameters.AddWithValue("key", RunLockKey(database));
            if (!(bool)(await take.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                continue;
            try
            {
                await DropDatabaseAsync(admin, database, cancellationToken).ConfigureAwait(false);
                dropped.Add(database);
            }
            finally
            {
                await using var release = new NpgsqlCommand("SELECT pg_advisory_unlock(hashtextextended(@key, 0))", (NpgsqlConnection)admin);
                release.Parameters.AddWithValue("key", RunLockKey(database));
                await release.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        return dropped;
    }

    internal override async Task MarkKeptAsync(DbConnection admin, string database, CancellationToken cancellationToken) =>
        await admin.RunAsync($"COMMENT ON DATABASE {Quote(database)} IS 'linq2db-testkit kept: {database}'", cancellationToken).ConfigureAwait(false);

    /// <summary>A session-level advisory lock: released explicitly, since the connection goes back to its pool.</summary>
    sealed class TemplateLock(NpgsqlConnection connection, string key, bool closeConnection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await using var command = new NpgsqlCommand("SELECT pg_advisory_unlock(hashtextextended(@key, 0))", connection);
                command.Parameters.AddWithValue("key", key);
                await command.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            catch (NpgsqlException)
            {
                // A broken session holds no lock: the server released it with the session.
                await connection.CloseAsync().ConfigureAwait(false);
                NpgsqlConnection.ClearPool(connection);
            }
            finally
            {
                if (closeConnection)
                    await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    internal override async Task<string?> ReadTemplateFingerprintAsync(DbConnection admin, string template, CancellationToken cancellationToken)
    {
        if (!await DatabaseExistsAsync(admin, template, cancellationToken).ConfigureAwait(false))
            return null;
        var mark = await ReadMarkerAsync(admin, template, cancellationToken).ConfigureAwait(false);
        if (mark is null || !mark.StartsWith(TemplateMark, StringComparison.Ordinal))
        {
            throw new TestKitConfigurationException(
                $"The server has a database named '{template}' that is not a schema template of the kit's (it lacks the kit's mark), so the kit will neither " +
                "use nor drop it. Rename or drop it yourself.");
        }

        return mark[TemplateMark.Length..];
    }

    internal override async Task<string?> SaveTemplateAsync(DbConnection admin, string source, string template, string fingerprint, Action closeIdleConnections, CancellationToken cancellationToken)
    {
        var next = template + "_next";
        if (await ReadTemplateFingerprintAsync(admin, next, cancellationToken).ConfigureAwait(false) is not null)
            await DropTemplateAsync(admin, next, cancellationToken).ConfigureAwait(false);

        // The copy needs the source to itself: the run's idle pooled connections go first; a session still busy there
        // (an application's background work) may take a moment to end.
        for (var attempt = 1; ; attempt++)
        {
            closeIdleConnections();
            try
            {
                await CopyDatabaseAsync(admin, source, next, TemplateMark + fingerprint, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 30)
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.ObjectInUse)
            {
                return $"other sessions stayed connected to the run's database ({exception.MessageText}), so it could not be copied; the next run builds the template again";
            }
        }

        await DropTemplateAsync(admin, template, cancellationToken).ConfigureAwait(false);
        await admin.RunAsync($"ALTER DATABASE {Quote(next)} RENAME TO {Quote(template)}", cancellationToken).ConfigureAwait(false);
        await admin.RunAsync($"ALTER DATABASE {Quote(template)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false", cancellationToken).ConfigureAwait(false);
        return null;
    }

    internal override async Task DropTemplateAsync(DbConnection admin, string template, CancellationToken cancellationToken)
    {
        if (await ReadMarkerAsync(admin, Spare(template), cancellationToken).ConfigureAwait(false) is { } spareMark && spareMark.StartsWith(SpareMark, StringComparison.Ordinal))
            await DropDatabaseAsync(admin, Spare(template), cancellationToken).ConfigureAwait(false);
        if (await ReadTemplateFingerprintAsync(admin, template, cancellationToken).ConfigureAwait(false) is null)
            return;
        await admin.RunAsync($"ALTER DATABASE {Quote(template)} WITH IS_TEMPLATE false", cancellationToken).ConfigureAwait(false);
        await DropDatabaseAsync(admin, template, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates <paramref name="database"/> as a copy of <paramref name="source"/>, equivalent to it: <c>CREATE DATABASE …
    /// TEMPLATE</c> copies what the database holds (schemas, extensions, default privileges, comments on objects) but
    /// not what the server keeps about it — its settings (<c>ALTER DATABASE … SET search_path</c>, per role too), its
    /// owner and the privileges granted on it — which are copied after it.
    /// </summary>
    static async Task CopyDatabaseAsync(DbConnection admin, string source, string database, string marker, CancellationToken cancellationToken)
    {
        await CreateMarkedAsync(admin, $"CREATE DATABASE {Quote(database)} TEMPLATE {Quote(source)}", database, marker, cancellationToken).ConfigureAwait(false);
        var statements = new List<string>();
        await using (var command = new NpgsqlCommand("""
            SELECT kind, who, what FROM (
            SELECT 'owner' AS kind, pg_get_userbyid(d.datdba) AS who, NULL AS what, 0 AS step FROM pg_database d WHERE d.datname = @source AND d.datdba <> (SELECT datdba FROM pg_database WHERE datname = @target)
            UNION ALL
            SELECT 'setting', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, c.setting, 1
            FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS c(setting) WHERE d.datname = @source
            UNION ALL
            SELECT 'revoke', NULL, NULL, 2 FROM pg_database d WHERE d.datname = @source AND d.datacl IS NOT NULL
            UNION ALL
            SELECT 'grant', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.privilege_type, 3
            FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = @source
            ) statements ORDER BY step
            """, (NpgsqlConnection)admin))
        {
            command.Parameters.AddWithValue("source", source);
            command.Parameters.AddWithValue("target", database);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var who = reader.IsDBNull(1) ? null : reader.GetString(1);
                statements.Add(reader.GetString(0) switch
                {
                    "owner" => $"ALTER DATABASE {Quote(database)} OWNER TO {Quote(who!)}",
                    "setting" => $"ALTER {(who is null ? string.Empty : $"ROLE {Quote(who)} IN ")}DATABASE {Quote(database)} SET {SettingAssignment(reader.GetString(2))}",
                    // The privileges on the source are explicit: those of a new database's default go first.
                    "revoke" => $"REVOKE ALL ON DATABASE {Quote(database)} FROM PUBLIC",
                    _ => $"GRANT {reader.GetString(2)} ON DATABASE {Quote(database)} TO {who}",
                });
            }
        }

        foreach (var statement in statements)
            await admin.RunAsync(statement, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>name = value</c> of a setting as <c>pg_db_role_setting</c> keeps it: the value of a list of names
    /// (<c>search_path</c>) as it stands, its elements quoted already where they need it; any other as a literal.
    /// </summary>
    static string SettingAssignment(string setting)
    {
        var equals = setting.IndexOf('=', StringComparison.Ordinal);
        var (name, value) = (setting[..equals], setting[(equals + 1)..]);
        return name is "search_path" or "temp_tablespaces" or "session_preload_libraries" or "local_preload_libraries"
            ? $"{name} = {value}"
            : $"{name} = '{value.Replace("'", "''", StringComparison.Ordinal)}'";
    }

    static async Task CreateMarkedAsync(DbConnection admin, string create, string database, string marker, CancellationToken cancellationToken)
    {
        await admin.RunAsync(create, cancellationToken).ConfigureAwait(false);
        try
        {
            await admin.RunAsync($"COMMENT ON DATABASE {Quote(database)} IS '{marker.Replace("'", "''", StringComparison.Ordinal)}'", cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // A database without the kit's mark would never be dropped by the kit.
            await admin.RunAsync($"DROP DATABASE {Quote(database)}", CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    internal override async Task<string?> ReadMarkerAsync(DbConnection admin, string database, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = @name", (NpgsqlConnection)admin);
        command.Parameters.AddWithValue("name", database);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    internal override async Task DropDatabaseAsync(DbConnection admin, string database, CancellationToken cancellationToken)
    {
        if (((NpgsqlConnection)admin).PostgreSqlVersion.Major >= 13)
        {
            await admin.RunAsync($"DROP DATABASE IF EXISTS {Quote(database)} WITH (FORCE)", cancellationToken).ConfigureAwait(false);
            return;
        }

        await admin.RunAsync($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database.Replace("'", "''", StringComparison.Ordinal)}' AND pid <> pg_backend_pid()", cancellationToken).ConfigureAwait(false);
        await admin.RunAsync($"DROP DATABASE IF EXISTS {Quote(database)}", cancellationToken).ConfigureAwait(false);
    }

    /// <remarks>
    /// Npgsql reports each command as an activity of its "Npgsql" source. Its tags changed names between versions:
    /// the connection string without its password is <c>db.connection_string</c> (Npgsql 8, 9) or
    /// <c>db.npgsql.data_source</c> (10), the database <c>db.name</c> or <c>db.namespace</c>, the SQL
    /// <c>db.statement</c> or <c>db.query.text</c>. Activities are created only for commands that run in a test's flow,
    /// outside the kit's own operations.
    /// </remarks>
    internal override IDisposable ObserveStatements(Action<ObservedStatement> onStatement)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) =>
                TestScope.Current is null || TestScope.RunsOwnStatement ? ActivitySamplingResult.None : ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (TestScope.Current is null)
                    return;
                var text = activity.GetTagItem("db.query.text") as string ?? activity.GetTagItem("db.statement") as string;
                if (text is null)
                    return;
                var source = activity.GetTagItem("db.npgsql.data_source") as string ?? activity.GetTagItem("db.connection_string") as string;
                var database = activity.GetTagItem("db.namespace") as string ?? activity.GetTagItem("db.name") as string;
                var failed = activity.Status == ActivityStatusCode.Error || activity.GetTagItem("otel.status_code") is "ERROR";
                var error = failed ? activity.GetTagItem("otel.status_description") as string ?? activity.GetTagItem("error.type") as string ?? ExceptionMessage(activity) ?? "failed" : null;
                onStatement(new ObservedStatement(ApplicationNameOf(source), database, text, error));
            },
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    static string? ExceptionMessage(Activity activity)
    {
        foreach (var activityEvent in activity.Events)
        {
            foreach (var tag in activityEvent.Tags)
            {
                if (tag.Key == "exception.message")
                    return tag.Value as string;
            }
        }

        return null;
    }

    static readonly ConcurrentDictionary<string, string?> ApplicationNames = new(StringComparer.Ordinal);

    /// <summary>The application name in Npgsql's description of a data source: a connection string, or (in later versions) the name alone.</summary>
    static string? ApplicationNameOf(string? dataSource) =>
        dataSource is null ? null : ApplicationNames.GetOrAdd(dataSource, static text =>
        {
            if (!text.Contains('=', StringComparison.Ordinal))
                return text;
            try
            {
                return new NpgsqlConnectionStringBuilder(text).ApplicationName;
            }
            catch (ArgumentException)
            {
                return null;
            }
        });

    /// <remarks>
    /// The digest sums a 64-bit hash of each row's text: it does not depend on the order of rows, and costs one pass over
    /// each table. The kit's own schema is left out.
    /// </remarks>
    internal override string ListServerObjectsSql => "SELECT 'database', datname::text FROM pg_database UNION ALL SELECT 'role', rolname::text FROM pg_roles";

    /// <remarks>
    /// Tables (a partitioned table reads its partitions), populated materialized views, and the large objects' list
    /// (<c>pg_largeobject_metadata</c>: a large object made or removed counts, a change of its contents does not).
    /// </remarks>
    internal override string ListTablesSql => """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (c.relkind IN ('r', 'p') OR c.relkind = 'm' AND c.relispopulated) AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'testkit')
          AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
        UNION ALL SELECT 'pg_catalog.pg_largeobject_metadata'
        ORDER BY 1
        """;

    internal override string TableContentsSql(string table, IReadOnlyList<TableColumn> columns, int index) =>
        $"SELECT {index}, count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {table} t";

    internal override async Task StorePreparedStateAsync(DbConnection connection, IReadOnlyDictionary<string, TableContents> contents, CancellationToken cancellationToken)
    {
        var sql = new System.Text.StringBuilder("""
            CREATE SCHEMA IF NOT EXISTS testkit;
            DROP TABLE IF EXISTS testkit.prepared_state;
            CREATE TABLE testkit.prepared_state (name text PRIMARY KEY, rows bigint NOT NULL, digest text NOT NULL);
            """);
        foreach (var (table, content) in contents)
            sql.Append(System.Globalization.CultureInfo.InvariantCulture, $"INSERT INTO testkit.prepared_state VALUES ('{table.Replace("'", "''", StringComparison.Ordinal)}', {content.Rows}, '{content.Digest}');\n");
        await connection.RunAsync(sql.ToString(), cancellationToken).ConfigureAwait(false);
    }

    internal override async Task<IReadOnlyDictionary<string, TableContents>?> ReadStoredPreparedStateAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        await using (var exists = new NpgsqlCommand("SELECT to_regclass('testkit.prepared_state') IS NOT NULL", (NpgsqlConnection)connection))
        {
            if (!(bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                return null;
        }

        var contents = new Dictionary<string, TableContents>(StringComparer.Ordinal);
        await using var command = new NpgsqlCommand("SELECT name, rows, digest FROM testkit.prepared_state", (NpgsqlConnection)connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            contents[reader.GetString(0)] = new TableContents(reader.GetInt64(1), reader.GetString(2));
        return contents;
    }

    internal override Task<ChangeTracker> InstallChangeTrackingAsync(DbConnection connection, CancellationToken cancellationToken) =>
        PostgreSqlChangeTracker.InstallAsync((NpgsqlConnection)connection, cancellationToken);

    internal override void ClearPool(string connectionString)
    {
        using var connection = new NpgsqlConnection(connectionString);
        NpgsqlConnection.ClearPool(connection);
    }

    internal override ConnectFailure ClassifyConnectFailure(Exception exception)
    {
        if (exception.Find<PostgresException>() is { } postgres)
        {
            return postgres.SqlState switch
            {
                PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification => ConnectFailure.AuthenticationFailed,
                PostgresErrorCodes.InvalidCatalogName => ConnectFailure.DatabaseMissing,
                _ => ConnectFailure.Other,
            };
        }

        if (exception.Find<TimeoutException>() is not null)
            return ConnectFailure.Timeout;

        return exception.Find<SocketException>()?.SocketErrorCode switch
        {
            SocketError.ConnectionRefused or SocketError.NetworkUnreachable or SocketError.HostUnreachable or SocketError.AddressNotAvailable => ConnectFailure.Unreachable,
            SocketError.TimedOut => ConnectFailure.Timeout,
            SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => ConnectFailure.UnknownHost,
            _ => ConnectFailure.Other,
        };
    }

    internal override StatementFailure ClassifyStatementFailure(Exception exception, DbConnection connection)
    {
        if (exception.Find<PostgresException>() is { } postgres)
        {
            if (postgres.SqlState == PostgresErrorCodes.InFailedSqlTransaction)
                return StatementFailure.TransactionAlreadyAborted;
            // Class 08 (connection exception) and the shutdown codes of class 57 end the session.
            if (postgres.SqlState.StartsWith("08", StringComparison.Ordinal)
                || postgres.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow)
                return StatementFailure.ConnectionLost;
            return StatementFailure.AbortsTransaction;
        }

        // Npgsql breaks the connection when it cannot go on (an I/O error, a cancellation that failed); a timeout it
        // recovered from leaves it open.
        if (connection.State is System.Data.ConnectionState.Broken or System.Data.ConnectionState.Closed)
            return StatementFailure.ConnectionLost;
        if (exception is NpgsqlException or OperationCanceledException or TimeoutException)
            return StatementFailure.MayHaveAborted;
        return StatementFailure.StatementOnly;
    }

    static string Quote(string identifier) => $"\"{identifier.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";

}

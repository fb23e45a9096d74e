using System.Data.Common;
using System.Globalization;
using System.Text;
using Linq2DbTestKit.Internal;
using Microsoft.Data.SqlClient;

namespace Linq2DbTestKit.SqlServer;

/// <summary>
/// Change tracking for real-commit sessions on SQL Server: an AFTER INSERT, UPDATE, DELETE trigger per table notes the
/// table in <c>testkit.changed_tables</c>, and each table that holds rows once prepared is copied into the
/// <c>testkit</c> schema. <c>testkit.reset</c> restores, in one transaction, the noted tables, the tables whose rows
/// refer to them, their identity values and the sequences.
/// </summary>
/// <remarks>
/// <para>
/// The triggers are enabled only while a session runs: SQL Server refuses <c>OUTPUT</c> without <c>INTO</c> on a table
/// with an enabled trigger, which linq2db and applications use. Enabling and disabling them costs a metadata change per
/// table at each session's start and end, so on SQL Server a session's fixed cost grows with the number of tables.
/// </para>
/// <para>
/// <c>TRUNCATE TABLE</c> fires no trigger: a table that held rows once prepared and holds another number now is restored
/// too (its row count, from <c>sys.partitions</c>); a table truncated and refilled to the same count is not noticed.
/// </para>
/// </remarks>
internal sealed class SqlServerChangeTracker(string enableTriggers, string disableTriggers) : ChangeTracker
{
    const string Catalog = """
        SELECT t.object_id, QUOTENAME(s.name) + N'.' + QUOTENAME(t.name), NULL,
               CAST(i.seed_value AS bigint), CAST(i.increment_value AS bigint), CAST(i.last_value AS bigint), i.object_id,
               (SELECT SUM(p.rows) FROM sys.partitions p WHERE p.object_id = t.object_id AND p.index_id IN (0, 1))
        FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id
        LEFT JOIN sys.identity_columns i ON i.object_id = t.object_id
        WHERE t.is_ms_shipped = 0 AND s.name <> N'testkit';
        SELECT parent_object_id, referenced_object_id FROM sys.foreign_keys;
        -- The columns a reset copies: not those the server writes itself (rowversion, computed, a temporal table's period).
        SELECT c.object_id, QUOTENAME(c.name) FROM sys.columns c JOIN sys.tables t ON t.object_id = c.object_id
        WHERE t.is_ms_shipped = 0 AND c.is_computed = 0 AND c.generated_always_type = 0 AND TYPE_NAME(c.system_type_id) NOT IN (N'timestamp', N'rowversion')
        ORDER BY c.object_id, c.column_id;
        -- last_used_value (SQL Server 2017 and later) is NULL until a sequence's first use, where current_value already holds the start.
        IF COL_LENGTH('sys.sequences', 'last_used_value') IS NOT NULL
            EXEC (N'SELECT q.object_id, QUOTENAME(s.name) + N''.'' + QUOTENAME(q.name), CAST(q.last_used_value AS bigint), CAST(q.start_value AS bigint), CAST(q.increment AS bigint)
                    FROM sys.sequences q JOIN sys.schemas s ON s.schema_id = q.schema_id WHERE s.name <> N''testkit''');
        ELSE
            SELECT q.object_id, QUOTENAME(s.name) + N'.' + QUOTENAME(q.name), CASE WHEN q.current_value = q.start_value THEN NULL ELSE CAST(q.current_value AS bigint) END,
                   CAST(q.start_value AS bigint), CAST(q.increment AS bigint)
            FROM sys.sequences q JOIN sys.schemas s ON s.schema_id = q.schema_id WHERE s.name <> N'testkit';
        """;

    const string Schema = """
        IF SCHEMA_ID(N'testkit') IS NULL EXEC (N'CREATE SCHEMA testkit');
        CREATE TABLE testkit.changed_tables (object_id int NOT NULL);
        CREATE TABLE testkit.units (object_id int PRIMARY KEY, name nvarchar(600) NOT NULL, level int NOT NULL, columns nvarchar(max) NULL,
            has_identity bit NOT NULL, ident_seed bigint NULL, ident_increment bigint NULL, ident_last bigint NULL, snapshot nvarchar(300) NULL, rows bigint NOT NULL);
        CREATE TABLE testkit.foreign_keys (child int NOT NULL, parent int NOT NULL);
        CREATE TABLE testkit.sequences (object_id int PRIMARY KEY, name nvarchar(600) NOT NULL, last_used bigint NULL, restart_with bigint NOT NULL);
        EXEC (N'
        CREATE PROCEDURE testkit.reset AS
        BEGIN
            SET NOCOUNT ON; SET XACT_ABORT ON; SET LOCK_TIMEOUT 10000;
            DECLARE @restoring TABLE (object_id int PRIMARY KEY);
            DECLARE @name nvarchar(600), @columns nvarchar(max), @identity bit, @snapshot nvarchar(300), @stmt nvarchar(max),
                    @seed bigint, @increment bigint, @last bigint, @reseed bigint, @restart bigint, @stray nvarchar(max), @rows bigint;
            BEGIN TRANSACTION;
            INSERT INTO @restoring SELECT DISTINCT c.object_id FROM testkit.changed_tables c JOIN testkit.units u ON u.object_id = c.object_id;
            INSERT INTO @restoring SELECT u.object_id FROM testkit.units u
                WHERE u.snapshot IS NOT NULL AND u.object_id NOT IN (SELECT object_id FROM @restoring)
                  AND u.rows <> (SELECT SUM(p.rows) FROM sys.partitions p WHERE p.object_id = u.object_id AND p.index_id IN (0, 1));
            WHILE 1 = 1
            BEGIN
                INSERT INTO @restoring SELECT DISTINCT f.child FROM testkit.foreign_keys f JOIN @restoring r ON r.object_id = f.parent
                    JOIN testkit.units u ON u.object_id = f.child WHERE u.snapshot IS NOT NULL AND f.child NOT IN (SELECT object_id FROM @restoring);
                IF @@ROWCOUNT = 0 BREAK;
            END;

            DECLARE deleting CURSOR LOCAL FAST_FORWARD FOR
                SELECT u.name FROM testkit.units u JOIN @restoring r ON r.object_id = u.object_id ORDER BY u.level DESC;
            OPEN deleting; FETCH NEXT FROM deleting INTO @name;
            WHILE @@FETCH_STATUS = 0
            BEGIN
                SET @stmt = N''DELETE FROM '' + @name; EXEC (@stmt);
                FETCH NEXT FROM deleting INTO @name;
            END;
            CLOSE deleting; DEALLOCATE deleting;

            DECLARE refilling CURSOR LOCAL FAST_FORWARD FOR
                SELECT u.name, u.columns, u.has_identity, u.snapshot FROM testkit.units u JOIN @restoring r ON r.object_id = u.object_id
                WHERE u.snapshot IS NOT NULL ORDER BY u.level;
            OPEN refilling; FETCH NEXT FROM refilling INTO @name, @columns, @identity, @snapshot;
            WHILE @@FETCH_STATUS = 0
            BEGIN
                SET @stmt = CASE WHEN @identity = 1 THEN N''SET IDENTITY_INSERT '' + @name + N'' ON; '' ELSE N'''' END
                    + N''INSERT INTO '' + @name + N'' ('' + @columns + N'') SELECT '' + @columns + N'' FROM '' + @snapshot + N'';''
                    + CASE WHEN @identity = 1 THEN N'' SET IDENTITY_INSERT '' + @name + N'' OFF;'' ELSE N'''' END;
                EXEC (@stmt);
                FETCH NEXT FROM refilling INTO @name, @columns, @identity, @snapshot;
            END;
            CLOSE refilling; DEALLOCATE refilling;

            -- Identity: RESEED sets the next value to the one given on a table that never had a row (or was truncated),
            -- and to the one given plus the increment on any other.
            DECLARE reseeding CURSOR LOCAL FAST_FORWARD FOR
                SELECT u.name, u.ident_seed, u.ident_increment, u.ident_last FROM testkit.units u JOIN @restoring r ON r.object_id = u.object_id
                WHERE u.has_identity = 1;
            OPEN reseeding; FETCH NEXT FROM reseeding INTO @name, @seed, @increment, @last;
            WHILE @@FETCH_STATUS = 0
            BEGIN
                IF (SELECT CAST(i.last_value AS bigint) FROM sys.identity_columns i WHERE i.object_id = OBJECT_ID(@name)) IS NULL
                    SET @reseed = CASE WHEN @last IS NULL THEN @seed ELSE @last + @increment END;
                ELSE
                    SET @reseed = CASE WHEN @last IS NULL THEN @seed - @increment ELSE @last END;
                SET @stmt = N''DBCC CHECKIDENT (N'''''' + REPLACE(@name, N'''''''', N'''''''''''') + N'''''', RESEED, '' + CAST(@reseed AS nvarchar(30)) + N'') WITH NO_INFOMSGS'';
                EXEC (@stmt);
                FETCH NEXT FROM reseeding INTO @name, @seed, @increment, @last;
            END;
            CLOSE reseeding; DEALLOCATE reseeding;

            -- Every sequence restarts where it stood: a restart is a metadata change, and sequences are few.
            DECLARE restarting CURSOR LOCAL FAST_FORWARD FOR SELECT s.name, s.restart_with FROM testkit.sequences s;
            OPEN restarting; FETCH NEXT FROM restarting INTO @name, @restart;
            WHILE @@FETCH_STATUS = 0
            BEGIN
                SET @stmt = N''ALTER SEQUENCE '' + @name + N'' RESTART WITH '' + CAST(@restart AS nvarchar(30)); EXEC (@stmt);
                FETCH NEXT FROM restarting INTO @name, @restart;
            END;
            CLOSE restarting; DEALLOCATE restarting;

            SELECT @stray = COALESCE(@stray + N'', '', N'''') + u.name FROM testkit.units u
                WHERE u.object_id IN (SELECT object_id FROM testkit.changed_tables) AND u.object_id NOT IN (SELECT object_id FROM @restoring);
            IF @stray IS NOT NULL
            BEGIN
                SET @stmt = N''restoring the changed tables wrote to '' + @stray + N'' (a trigger or a cascade of the application''''s schema)'';
                THROW 50000, @stmt, 1;
            END;

            DELETE FROM testkit.changed_tables;
            COMMIT;
            SELECT u.name FROM testkit.units u JOIN @restoring r ON r.object_id = u.object_id ORDER BY u.name;
        END');
        """;

    public static async Task<ChangeTracker> InstallAsync(SqlConnection connection, CancellationToken cancellationToken)
    {
        var tables = new List<(int Id, string Name, string? Columns, long? Seed, long? Increment, long? Last, bool HasIdentity, long Rows)>();
        var foreignKeys = new List<(long Child, long Parent)>();
        var sequences = new List<(int Id, string Name, long? LastUsed, long Start, long Increment)>();
        await using (var catalog = new SqlCommand(Catalog, connection))
        await using (var reader = await catalog.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                tables.Add((reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                    reader.IsDBNull(3) ? null : reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.IsDBNull(5) ? null : reader.GetInt64(5),
                    !reader.IsDBNull(6), reader.IsDBNull(7) ? 0 : reader.GetInt64(7)));
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                foreignKeys.Add((reader.GetInt32(0), reader.GetInt32(1)));
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            var columns = new Dictionary<int, List<string>>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!columns.TryGetValue(reader.GetInt32(0), out var list))
                    columns[reader.GetInt32(0)] = list = [];
                list.Add(reader.GetString(1));
            }

            tables = tables.Select(t => t with { Columns = columns.TryGetValue(t.Id, out var list) ? string.Join(", ", list) : null }).ToList();
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                sequences.Add((reader.GetInt32(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4)));
        }

        var levels = TableOrder.Levels(tables.Select(t => (long)t.Id), foreignKeys);
        var sql = new StringBuilder(Schema);
        var enable = new StringBuilder();
        var disable = new StringBuilder();
        sql.AppendLine("BEGIN TRANSACTION;");
        foreach (var table in tables)
        {
            var snapshot = table.Rows > 0 ? $"testkit.snapshot_{table.Id}" : null;
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.units VALUES ({table.Id}, {Literal(table.Name)}, {levels[table.Id]}, {Literal(table.Columns)}, {(table.HasIdentity ? 1 : 0)}, {Number(table.Seed)}, {Number(table.Increment)}, {Number(table.Last)}, {Literal(snapshot)}, {table.Rows});\n");
            if (snapshot is not null)
                sql.Append(CultureInfo.InvariantCulture, $"SELECT {table.Columns} INTO {snapshot} FROM {table.Name};\n");

            var schema = table.Name[..(table.Name.IndexOf("].[", StringComparison.Ordinal) + 1)];
            var trigger = $"{schema}.[testkit_changes_{table.Id}]";
            sql.Append(CultureInfo.InvariantCulture,
                $"EXEC (N'CREATE TRIGGER {Escape(trigger)} ON {Escape(table.Name)} AFTER INSERT, UPDATE, DELETE AS SET NOCOUNT ON; INSERT INTO testkit.changed_tables VALUES ({table.Id});');\n");
            sql.Append(CultureInfo.InvariantCulture, $"DISABLE TRIGGER {trigger} ON {table.Name};\n");
            enable.Append(CultureInfo.InvariantCulture, $"ENABLE TRIGGER {trigger} ON {table.Name};\n");
            disable.Append(CultureInfo.InvariantCulture, $"DISABLE TRIGGER {trigger} ON {table.Name};\n");
        }

        foreach (var (child, parent) in foreignKeys.Distinct())
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.foreign_keys VALUES ({child}, {parent});\n");

        foreach (var sequence in sequences)
        {
            var restart = sequence.LastUsed is { } lastUsed ? lastUsed + sequence.Increment : sequence.Start;
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.sequences VALUES ({sequence.Id}, {Literal(sequence.Name)}, {Number(sequence.LastUsed)}, {restart});\n");
        }

        sql.AppendLine("COMMIT;");
        await using (var install = new SqlCommand(sql.ToString(), connection) { CommandTimeout = 0 })
            await install.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return new SqlServerChangeTracker(enable.ToString(), disable.ToString());
    }

    static string Literal(string? value) => value is null ? "NULL" : $"N'{value.Replace("'", "''", StringComparison.Ordinal)}'";

    static string Escape(string sql) => sql.Replace("'", "''", StringComparison.Ordinal);

    static string Number(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "NULL";

    public override async Task<IReadOnlyList<string>> BeginAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var sql = "SET NOCOUNT ON; SET LOCK_TIMEOUT 10000; BEGIN TRANSACTION;\n" +
                  "SELECT DISTINCT u.name FROM testkit.changed_tables c JOIN testkit.units u ON u.object_id = c.object_id ORDER BY u.name;\n" +
                  "DELETE FROM testkit.changed_tables;\n" + enableTriggers + "COMMIT;";
        var names = new List<string>();
        try
        {
            await using var command = new SqlCommand(sql, (SqlConnection)connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                names.Add(reader.GetString(0));
        }
        catch (SqlException exception) when (exception.Number == 1222)
        {
            throw new TestScopeException(
                "A real-commit test could not enable the kit's change tracking triggers: a transaction still open holds a table (a scope that is never " +
                "disposed, or a class's shared seed — SeededDatabaseTest — waiting for its next test). On SQL Server a real-commit test cannot run while " +
                "such a class is between its tests: keep them in separate test runs.", exception);
        }

        return names;
    }

    public override async Task<IReadOnlyList<string>> ResetAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        try
        {
            await using (var command = new SqlCommand("EXEC testkit.reset", (SqlConnection)connection) { CommandTimeout = 0 })
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    names.Add(reader.GetString(0));
            }
        }
        catch (SqlException exception)
        {
            var cause = exception.Number switch
            {
                1222 => "a connection the test left open still holds a lock on a table to restore (a transaction it never ended): end every transaction and close every connection before the test ends",
                547 => $"the tables' foreign keys refuse the order of the reset (a cycle of foreign keys): {exception.Message}",
                _ => exception.Message,
            };
            throw new TestScopeException(
                $"The reset after a real-commit test failed, so the run's database may keep what the test committed: {cause}. The run's leak check reports what stayed.", exception);
        }
        finally
        {
            await using var disable = new SqlCommand(disableTriggers.Length == 0 ? "SELECT 1" : disableTriggers, (SqlConnection)connection);
            await disable.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }

        return names;
    }
}

using System.Data.Common;
using System.Globalization;
using System.Text;
using Linq2DbTestKit.Internal;
using Npgsql;

namespace Linq2DbTestKit.PostgreSql;

/// <summary>
/// Change tracking for real-commit sessions on PostgreSQL. Every table (partitions too) gets a statement-level trigger
/// on INSERT, UPDATE, DELETE and TRUNCATE that notes the table in <c>testkit.changed_tables</c>: transactional, so what
/// a scope writes and rolls back notes nothing. Each table that holds rows once prepared is copied into the
/// <c>testkit</c> schema. <c>testkit.reset()</c> then restores, in one round trip, only the noted tables, the tables
/// whose rows refer to them, and their sequences.
/// </summary>
/// <remarks>
/// Why triggers: PostgreSQL's statistics views are updated late and miss TRUNCATE, and comparing every table costs what
/// the schema is. A statement-level trigger costs one small insert per write statement, and is rolled back with the
/// statement's transaction.
/// </remarks>
internal sealed class PostgreSqlChangeTracker : ChangeTracker
{
    const string Catalog = """
        SELECT c.oid::bigint, coalesce(pg_partition_root(c.oid), c.oid)::bigint, format('%I.%I', n.nspname, c.relname), c.relispartition,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
               EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = 'a')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'testkit')
          AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%';
        SELECT conrelid::bigint, confrelid::bigint FROM pg_constraint WHERE contype = 'f' AND conparentid = 0;
        SELECT s.seqrelid::bigint, pg_sequence_last_value(s.seqrelid), s.seqstart,
               (SELECT d.refobjid::bigint FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1)
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname <> 'testkit';
        """;

    const string Schema = """
        CREATE SCHEMA IF NOT EXISTS testkit;
        COMMENT ON SCHEMA testkit IS 'linq2db-testkit: change tracking of real-commit tests; dropped with the run''s database';
        CREATE UNLOGGED TABLE testkit.changed_tables (relid oid NOT NULL);
        CREATE FUNCTION testkit.record_change() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $$BEGIN INSERT INTO testkit.changed_tables VALUES (TG_RELID); RETURN NULL; END$$;
        CREATE TABLE testkit.units (relid oid PRIMARY KEY, name text NOT NULL, level int NOT NULL, columns text, overriding boolean NOT NULL, snapshot text);
        CREATE TABLE testkit.members (relid oid PRIMARY KEY, unit oid NOT NULL);
        CREATE TABLE testkit.foreign_keys (child oid NOT NULL, parent oid NOT NULL);
        CREATE TABLE testkit.sequences (seq oid PRIMARY KEY, owner oid, last_value bigint NOT NULL, is_called boolean NOT NULL);
        CREATE FUNCTION testkit.reset() RETURNS SETOF text LANGUAGE plpgsql AS $reset$
        DECLARE
            restoring oid[];
            u record;
            stray text;
            grew boolean;
        BEGIN
            PERFORM set_config('lock_timeout', '10s', true);
            WITH RECURSIVE changed AS (
                SELECT DISTINCT m.unit FROM testkit.changed_tables c JOIN testkit.members m ON m.relid = c.relid),
            affected(unit) AS (
                SELECT unit FROM changed
                UNION
                SELECT f.child FROM testkit.foreign_keys f JOIN affected a ON f.parent = a.unit
                  JOIN testkit.units t ON t.relid = f.child WHERE t.snapshot IS NOT NULL)
            SELECT array_agg(unit) INTO restoring FROM affected;
            IF restoring IS NULL THEN
                RETURN;
            END IF;

            FOR u IN SELECT * FROM testkit.units WHERE relid = ANY (restoring) ORDER BY level DESC LOOP
                EXECUTE format('DELETE FROM %s', u.name);
            END LOOP;
            FOR u IN SELECT * FROM testkit.units WHERE relid = ANY (restoring) AND snapshot IS NOT NULL ORDER BY level LOOP
                EXECUTE format('INSERT INTO %s (%s) %s SELECT %s FROM %s', u.name, u.columns,
                    CASE WHEN u.overriding THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END, u.columns, u.snapshot);
            END LOOP;
            PERFORM setval(s.seq::regclass, s.last_value, s.is_called) FROM testkit.sequences s
              WHERE s.owner IS NULL OR s.owner = ANY (restoring);

            -- What the reset's own statements set off elsewhere (the application's triggers, cascades) must be nothing.
            FOR u IN SELECT DISTINCT t.* FROM testkit.changed_tables c JOIN testkit.members m ON m.relid = c.relid
                       JOIN testkit.units t ON t.relid = m.unit WHERE m.unit <> ALL (restoring) LOOP
                EXECUTE format('SELECT EXISTS (SELECT FROM %s)', u.name) INTO grew;
                IF u.snapshot IS NOT NULL OR grew THEN
                    stray := concat_ws(', ', stray, u.name);
                END IF;
            END LOOP;
            IF stray IS NOT NULL THEN
                RAISE EXCEPTION 'restoring % wrote to % (a trigger or a cascade of the application''s schema)',
                    (SELECT string_agg(name, ', ') FROM testkit.units WHERE relid = ANY (restoring)), stray;
            END IF;

            DELETE FROM testkit.changed_tables;
            RETURN QUERY SELECT name FROM testkit.units WHERE relid = ANY (restoring) ORDER BY name;
        END
        $reset$;
        """;

    public static async Task<ChangeTracker> InstallAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // A copy of a schema template comes with it installed.
        await using (var installed = new NpgsqlCommand("SELECT to_regclass('testkit.units') IS NOT NULL", connection))
        {
            if ((bool)(await installed.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                return new PostgreSqlChangeTracker();
        }

        var relations = new List<(long Relid, long Unit, string Name, bool IsPartition, string? Columns, bool Overriding)>();
        var foreignKeys = new List<(long Child, long Parent)>();
        var sequences = new List<(long Seq, long? LastValue, long Start, long? Owner)>();
        await using (var catalog = new NpgsqlCommand(Catalog, connection))
        await using (var reader = await catalog.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                relations.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetBoolean(3), reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetBoolean(5)));
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                foreignKeys.Add((reader.GetInt64(0), reader.GetInt64(1)));
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                sequences.Add((reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetInt64(3)));
        }

        var units = relations.Where(r => !r.IsPartition).ToList();
        var unitOf = relations.ToDictionary(r => r.Relid, r => r.Unit);
        var filled = new HashSet<long>();
        if (units.Count > 0)
        {
            var probe = string.Join("\nUNION ALL ", units.Select(u => $"SELECT {u.Relid}::bigint WHERE EXISTS (SELECT FROM {u.Name})"));
            await using var command = new NpgsqlCommand(probe, connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                filled.Add(reader.GetInt64(0));
        }

        var edges = foreignKeys.Where(f => unitOf.ContainsKey(f.Child) && unitOf.ContainsKey(f.Parent)).Select(f => (unitOf[f.Child], unitOf[f.Parent])).Distinct().ToList();
        var levels = TableOrder.Levels(units.Select(u => u.Relid), edges);

        var sql = new StringBuilder("BEGIN;\nSET LOCAL lock_timeout = '10s';\n").AppendLine(Schema);
        foreach (var unit in units)
        {
            var snapshot = filled.Contains(unit.Relid) ? $"testkit.snapshot_{unit.Relid}" : null;
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.units VALUES ({unit.Relid}, {Literal(unit.Name)}, {levels[unit.Relid]}, {Literal(unit.Columns)}, {unit.Overriding}, {Literal(snapshot)});\n");
            if (snapshot is not null)
                sql.Append(CultureInfo.InvariantCulture, $"CREATE TABLE {snapshot} AS SELECT {unit.Columns} FROM {unit.Name};\n");
        }

        foreach (var relation in relations)
        {
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.members VALUES ({relation.Relid}, {relation.Unit});\n");
            sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {relation.Name} FOR EACH STATEMENT EXECUTE FUNCTION testkit.record_change();\n");
        }

        foreach (var (child, parent) in edges)
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.foreign_keys VALUES ({child}, {parent});\n");
        foreach (var sequence in sequences)
        {
            var owner = sequence.Owner is { } table && unitOf.TryGetValue(table, out var unitOfOwner) ? unitOfOwner.ToString(CultureInfo.InvariantCulture) : "NULL";
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO testkit.sequences VALUES ({sequence.Seq}, {owner}, {sequence.LastValue ?? sequence.Start}, {sequence.LastValue is not null});\n");
        }

        sql.Append("COMMIT;");
        try
        {
            await using var install = new NpgsqlCommand(sql.ToString(), connection) { CommandTimeout = 0 };
            await install.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.LockNotAvailable)
        {
            throw new TestScopeException(
                "The first real-commit test of the run could not install the kit's change tracking: a transaction still open holds a table it needs " +
                "(a scope that is never disposed, or a class's shared seed — SeededDatabaseTest — waiting for its next test). The NUnit integration " +
                "installs it before the first test when the test assembly has a [RealCommits] test; outside it, begin the first session before other scopes.", exception);
        }

        return new PostgreSqlChangeTracker();
    }

    static string Literal(string? value) => value is null ? "NULL" : $"'{value.Replace("'", "''", StringComparison.Ordinal)}'";

    public override async Task<IReadOnlyList<string>> BeginAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        const string forget = """
            WITH gone AS (DELETE FROM testkit.changed_tables RETURNING relid)
            SELECT DISTINCT t.name FROM gone JOIN testkit.members m ON m.relid = gone.relid JOIN testkit.units t ON t.relid = m.unit ORDER BY 1
            """;
        return await ReadNamesAsync((NpgsqlConnection)connection, forget, cancellationToken).ConfigureAwait(false);
    }

    public override async Task<IReadOnlyList<string>> ResetAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadNamesAsync((NpgsqlConnection)connection, "SELECT testkit.reset()", cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException exception)
        {
            var cause = exception.SqlState switch
            {
                PostgresErrorCodes.LockNotAvailable =>
                    "a transaction still open holds a lock on a table to restore: one the test left open (end every transaction and close every connection " +
                    "before the test ends), or a class's shared seed (SeededDatabaseTest) that changed the same rows",
                PostgresErrorCodes.ForeignKeyViolation =>
                    $"the tables' foreign keys refuse the order of the reset (a cycle of foreign keys that are not DEFERRABLE): {exception.MessageText}",
                _ => exception.MessageText,
            };
            throw new TestScopeException(
                $"The reset after a real-commit test failed, so the run's database may keep what the test committed: {cause}. " +
                "The run's leak check reports what stayed.", exception);
        }
    }

    static async Task<IReadOnlyList<string>> ReadNamesAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            names.Add(reader.GetString(0));
        return names;
    }
}

using System.Data.Common;
using System.Globalization;
using System.Text;
using Linq2DbTestKit.Internal;
using Npgsql;

namespace Linq2DbTestKit.PostgreSql;

/// <summary>
/// Real-commit sessions on PostgreSQL, row by row. Each table notes the keys of the rows a committed statement wrote in
/// a key log of its own (<c>testkit.keys_…</c>), and each table that holds rows once prepared is copied, keyed like the
/// table. After a session, <c>testkit.reset()</c> deletes the rows of the noted keys and puts back the copy's rows of the
/// same keys: it costs what the session wrote, not what the tables hold.
/// </summary>
/// <remarks>
/// <para>
/// The notes are triggers, so they are transactional: what a scope writes and rolls back notes nothing. A plain table
/// has a statement-level trigger per kind of write whose transition tables hand over every written row's key in one
/// statement; partitions and tables of an inheritance tree, whose rows a statement on another table of the tree can
/// write, have a row-level trigger. A table without a key (a primary key, or a unique index of columns that are never
/// NULL), and a truncated one, is restored whole. The triggers run <c>ENABLE ALWAYS</c>: rows loaded with
/// <c>session_replication_role = replica</c> (bulk loaders, <c>pg_restore</c>) are noted too.
/// </para>
/// <para>
/// The reset runs with <c>session_replication_role = replica</c>: no trigger of the application fires (no audit row, no
/// <c>updated_at</c>, no <c>NOTIFY</c>), and no foreign key is checked or cascades, so the order of tables does not
/// matter and a cycle of foreign keys restores as any other. That needs a superuser, or on PostgreSQL 15 and later
/// <c>GRANT SET ON PARAMETER session_replication_role</c>. It deletes with <c>ONLY</c>, so that the rows of an
/// inheritance child stay the child's. Sequences that moved since the session began go back to where they stood then;
/// materialized views that differ from their prepared state are refreshed; large objects made since are removed.
/// </para>
/// <para>
/// What was written outside every session (a leak) is reported when the next session begins and forgotten, not
/// restored: the run's leak check must still find it.
/// </para>
/// </remarks>
internal sealed class PostgreSqlChangeTracker : ChangeTracker
{
    const string Catalog = """
        SELECT c.oid::bigint, format('%I.%I', n.nspname, c.relname),
               c.relispartition OR EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid),
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
               EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = 'a'),
               (SELECT array_agg(quote_ident(a.attname) ORDER BY k.ord)
                  FROM (SELECT i.indkey::int2[] AS columns FROM pg_index i
                         WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                           AND NOT EXISTS (SELECT FROM unnest(i.indkey::int2[]) col JOIN pg_attribute a2 ON a2.attrelid = c.oid AND a2.attnum = col
                                            WHERE NOT a2.attnotnull)
                         ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) ix,
                       unnest(ix.columns) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'testkit')
          AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%';
        """;

    const string Schema = """
        CREATE SCHEMA IF NOT EXISTS testkit;
        COMMENT ON SCHEMA testkit IS 'linq2db-testkit: change tracking of real-commit tests; dropped with the run''s database';
        CREATE UNLOGGED TABLE testkit.changed (relid oid NOT NULL, whole boolean NOT NULL);
        CREATE TABLE testkit.relations (relid oid PRIMARY KEY, name text NOT NULL, columns text, overriding boolean NOT NULL,
            key text, key_match text, keys text, snapshot text);
        CREATE TABLE testkit.sequence_positions (seq oid PRIMARY KEY, last_value bigint NOT NULL, is_called boolean NOT NULL);
        CREATE TABLE testkit.matviews (relid oid PRIMARY KEY, name text NOT NULL, populated boolean NOT NULL, digest text);
        CREATE TABLE testkit.large_objects (lo oid PRIMARY KEY);

        -- TG_ARGV: the key log, the key's columns; none for a table restored whole.
        CREATE FUNCTION testkit.note() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' OR TG_NARGS = 0 THEN
                INSERT INTO testkit.changed VALUES (TG_RELID, true);
                RETURN NULL;
            END IF;
            IF TG_LEVEL = 'STATEMENT' THEN
                IF TG_OP IN ('INSERT', 'UPDATE') THEN EXECUTE format('INSERT INTO %s SELECT %s FROM new_rows', TG_ARGV[0], TG_ARGV[1]); END IF;
                IF TG_OP IN ('DELETE', 'UPDATE') THEN EXECUTE format('INSERT INTO %s SELECT %s FROM old_rows', TG_ARGV[0], TG_ARGV[1]); END IF;
            ELSE
                IF TG_OP IN ('INSERT', 'UPDATE') THEN EXECUTE format('INSERT INTO %s SELECT %s FROM (SELECT ($1).*) r', TG_ARGV[0], TG_ARGV[1]) USING NEW; END IF;
                IF TG_OP IN ('DELETE', 'UPDATE') THEN EXECUTE format('INSERT INTO %s SELECT %s FROM (SELECT ($1).*) r', TG_ARGV[0], TG_ARGV[1]) USING OLD; END IF;
            END IF;
            INSERT INTO testkit.changed VALUES (TG_RELID, false);
            RETURN NULL;
        END $$;

        CREATE FUNCTION testkit.sequences() RETURNS TABLE (seq oid, last_value bigint, is_called boolean) LANGUAGE plpgsql AS $$
        DECLARE s record;
        BEGIN
            FOR s IN SELECT q.seqrelid FROM pg_sequence q JOIN pg_class c ON c.oid = q.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname <> 'testkit' LOOP
                seq := s.seqrelid;
                EXECUTE format('SELECT last_value, is_called FROM %s', s.seqrelid::regclass) INTO last_value, is_called;
                RETURN NEXT;
            END LOOP;
        END $$;

        CREATE FUNCTION testkit.digest(relation regclass) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE d text;
        BEGIN
            EXECUTE format('SELECT count(*) || ''.'' || coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) FROM %s t', relation) INTO d;
            RETURN d;
        END $$;

        -- A session begins: what was written since the last reset was committed by no session; its names are returned
        -- and its notes forgotten, so that the session's reset does not put it back. Sequences' positions are kept.
        CREATE FUNCTION testkit.begin_session() RETURNS SETOF text LANGUAGE plpgsql AS $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT t.* FROM testkit.relations t WHERE t.relid IN (SELECT relid FROM testkit.changed) ORDER BY t.name LOOP
                IF r.keys IS NOT NULL THEN EXECUTE format('DELETE FROM %s', r.keys); END IF;
                RETURN NEXT r.name;
            END LOOP;
            DELETE FROM testkit.changed;
            DELETE FROM testkit.sequence_positions;
            INSERT INTO testkit.sequence_positions SELECT * FROM testkit.sequences();
        END $$;

        CREATE FUNCTION testkit.reset() RETURNS SETOF text LANGUAGE plpgsql AS $reset$
        DECLARE
            r record;
            overriding text;
            now_last bigint;
            now_called boolean;
        BEGIN
            SET LOCAL lock_timeout = '10s';
            SET LOCAL session_replication_role = replica;
            FOR r IN SELECT t.*, bool_or(c.whole) AS whole FROM testkit.relations t JOIN testkit.changed c ON c.relid = t.relid
                     GROUP BY t.relid ORDER BY t.name LOOP
                overriding := CASE WHEN r.overriding THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END;
                IF r.whole OR r.key IS NULL THEN
                    EXECUTE format('DELETE FROM ONLY %s', r.name);
                    IF r.snapshot IS NOT NULL THEN
                        EXECUTE format('INSERT INTO %s (%s) %s SELECT %s FROM %s', r.name, r.columns, overriding, r.columns, r.snapshot);
                    END IF;
                ELSE
                    EXECUTE format('DELETE FROM ONLY %s t USING (SELECT DISTINCT %s FROM %s) k WHERE %s', r.name, r.key, r.keys, r.key_match);
                    IF r.snapshot IS NOT NULL THEN
                        EXECUTE format('INSERT INTO %s (%s) %s SELECT %s FROM %s t WHERE EXISTS (SELECT FROM %s k WHERE %s)',
                            r.name, r.columns, overriding, r.columns, r.snapshot, r.keys, r.key_match);
                    END IF;
                END IF;
                RETURN NEXT r.name;
            END LOOP;
            FOR r IN SELECT keys FROM testkit.relations WHERE keys IS NOT NULL AND relid IN (SELECT relid FROM testkit.changed) LOOP
                EXECUTE format('DELETE FROM %s', r.keys);
            END LOOP;
            DELETE FROM testkit.changed;

            FOR r IN SELECT p.*, s.last_value AS now_last, s.is_called AS now_called FROM testkit.sequence_positions p JOIN testkit.sequences() s ON s.seq = p.seq
                     WHERE (s.last_value, s.is_called) IS DISTINCT FROM (p.last_value, p.is_called) LOOP
                PERFORM setval(r.seq::regclass, r.last_value, r.is_called);
            END LOOP;

            FOR r IN SELECT m.*, c.relispopulated FROM testkit.matviews m JOIN pg_class c ON c.oid = m.relid LOOP
                IF r.relispopulated IS DISTINCT FROM r.populated OR (r.populated AND testkit.digest(r.relid::regclass) IS DISTINCT FROM r.digest) THEN
                    EXECUTE format('REFRESH MATERIALIZED VIEW %s %s', r.name, CASE WHEN r.populated THEN '' ELSE 'WITH NO DATA' END);
                    RETURN NEXT r.name;
                END IF;
            END LOOP;

            IF EXISTS (SELECT FROM pg_largeobject_metadata m WHERE m.oid NOT IN (SELECT lo FROM testkit.large_objects)) THEN
                PERFORM lo_unlink(m.oid) FROM pg_largeobject_metadata m WHERE m.oid NOT IN (SELECT lo FROM testkit.large_objects);
            END IF;
        END
        $reset$;
        """;

    public static async Task<ChangeTracker> InstallAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // A copy of a schema template comes with it installed.
        await using (var installed = new NpgsqlCommand("SELECT to_regclass('testkit.relations') IS NOT NULL", connection))
        {
            if ((bool)(await installed.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                return new PostgreSqlChangeTracker();
        }

        var relations = new List<(long Relid, string Name, bool PerRow, string? Columns, bool Overriding, string[]? Key)>();
        await using (var catalog = new NpgsqlCommand(Catalog, connection))
        await using (var reader = await catalog.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                relations.Add((reader.GetInt64(0), reader.GetString(1), reader.GetBoolean(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                    reader.GetBoolean(4), reader.IsDBNull(5) ? null : reader.GetFieldValue<string[]>(5)));
            }
        }

        var filled = new HashSet<long>();
        if (relations.Count > 0)
        {
            var probe = string.Join("\nUNION ALL ", relations.Select(r => $"SELECT {r.Relid}::bigint WHERE EXISTS (SELECT FROM ONLY {r.Name})"));
            await using var command = new NpgsqlCommand(probe, connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                filled.Add(reader.GetInt64(0));
        }

        var sql = new StringBuilder("BEGIN;\nSET LOCAL lock_timeout = '10s';\n").AppendLine(Schema);
        foreach (var relation in relations)
        {
            var snapshot = filled.Contains(relation.Relid) ? $"testkit.snapshot_{relation.Relid}" : null;
            var key = relation.Key is { Length: > 0 } columns && relation.Columns is not null ? string.Join(", ", columns) : null;
            var keys = key is null ? null : $"testkit.keys_{relation.Relid}";
            var keyMatch = relation.Key is { Length: > 0 } matched && key is not null ? string.Join(" AND ", matched.Select(c => $"t.{c} = k.{c}")) : null;
            sql.Append(CultureInfo.InvariantCulture,
                $"INSERT INTO testkit.relations VALUES ({relation.Relid}, {Literal(relation.Name)}, {Literal(relation.Columns)}, {relation.Overriding}, {Literal(key)}, {Literal(keyMatch)}, {Literal(keys)}, {Literal(snapshot)});\n");
            if (snapshot is not null)
            {
                sql.Append(CultureInfo.InvariantCulture, $"CREATE TABLE {snapshot} AS SELECT {relation.Columns} FROM ONLY {relation.Name};\n");
                if (key is not null)
                    sql.Append(CultureInfo.InvariantCulture, $"CREATE UNIQUE INDEX ON {snapshot} ({key});\n");
            }

            if (keys is not null)
            {
                sql.Append(CultureInfo.InvariantCulture, $"CREATE UNLOGGED TABLE {keys} AS SELECT {key} FROM ONLY {relation.Name} WITH NO DATA;\n");
                var arguments = $"'{keys}', '{key!.Replace("'", "''", StringComparison.Ordinal)}'";
                if (relation.PerRow)
                {
                    sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_rows AFTER INSERT OR UPDATE OR DELETE ON {relation.Name} FOR EACH ROW EXECUTE FUNCTION testkit.note({arguments});\n");
                    sql.Append(CultureInfo.InvariantCulture, $"ALTER TABLE {relation.Name} ENABLE ALWAYS TRIGGER testkit_rows;\n");
                }
                else
                {
                    sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_inserts AFTER INSERT ON {relation.Name} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION testkit.note({arguments});\n");
                    sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_updates AFTER UPDATE ON {relation.Name} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION testkit.note({arguments});\n");
                    sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_deletes AFTER DELETE ON {relation.Name} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION testkit.note({arguments});\n");
                    sql.Append(CultureInfo.InvariantCulture, $"ALTER TABLE {relation.Name} ENABLE ALWAYS TRIGGER testkit_inserts, ENABLE ALWAYS TRIGGER testkit_updates, ENABLE ALWAYS TRIGGER testkit_deletes;\n");
                }
            }
            else
            {
                sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_writes AFTER INSERT OR UPDATE OR DELETE ON {relation.Name} FOR EACH STATEMENT EXECUTE FUNCTION testkit.note();\n");
                sql.Append(CultureInfo.InvariantCulture, $"ALTER TABLE {relation.Name} ENABLE ALWAYS TRIGGER testkit_writes;\n");
            }

            sql.Append(CultureInfo.InvariantCulture, $"CREATE TRIGGER testkit_truncates AFTER TRUNCATE ON {relation.Name} FOR EACH STATEMENT EXECUTE FUNCTION testkit.note();\n");
            sql.Append(CultureInfo.InvariantCulture, $"ALTER TABLE {relation.Name} ENABLE ALWAYS TRIGGER testkit_truncates;\n");
        }

        sql.AppendLine("""
            INSERT INTO testkit.matviews SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relispopulated,
                   CASE WHEN c.relispopulated THEN testkit.digest(c.oid::regclass) END
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm';
            INSERT INTO testkit.large_objects SELECT oid FROM pg_largeobject_metadata;
            COMMIT;
            """);
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

    public override async Task<IReadOnlyList<string>> BeginAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await ReadNamesAsync((NpgsqlConnection)connection, "SELECT testkit.begin_session()", cancellationToken).ConfigureAwait(false);

    public override async Task<IReadOnlyList<string>> ResetAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadNamesAsync((NpgsqlConnection)connection, "SELECT DISTINCT n FROM testkit.reset() n ORDER BY 1", cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException exception)
        {
            var cause = exception.SqlState switch
            {
                PostgresErrorCodes.LockNotAvailable =>
                    "a transaction still open holds a lock on a row to restore: one the test left open (end every transaction and close every connection " +
                    "before the test ends), or a class's shared seed (SeededDatabaseTest) that holds the same rows",
                PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.CantChangeRuntimeParam =>
                    "the reset runs with session_replication_role = replica, so that no trigger of the application fires and no foreign key refuses " +
                    $"its order, and the user may not set it ({exception.MessageText}). Run the tests as a superuser, or on PostgreSQL 15 and later " +
                    "GRANT SET ON PARAMETER session_replication_role TO the user of the connection string",
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

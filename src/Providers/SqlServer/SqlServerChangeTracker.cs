using System.Data.Common;
using System.Globalization;
using System.Text;
using Linq2DbTestKit.Internal;
using Microsoft.Data.SqlClient;

namespace Linq2DbTestKit.SqlServer;

/// <summary>
/// Real-commit sessions on SQL Server, by comparison with a copy: each table that holds rows once prepared is copied
/// into the <c>testkit</c> schema, keyed like the table. After a session the kit compares every table with its copy,
/// row by row and key by key, and puts back what differs: it deletes the rows the copy lacks, updates the rows that
/// changed, and inserts the rows that went missing, with the application's triggers disabled while it does.
/// </summary>
/// <remarks>
/// <para>
/// Why no triggers: SQL Server refuses <c>OUTPUT</c> without <c>INTO</c> on a table with an enabled trigger (error 334),
/// which linq2db and applications use; a bulk load fires no trigger unless told to; and enabling triggers for a session
/// waits on every lock of every table. A comparison sees everything that was committed, however it got there.
/// </para>
/// <para>
/// What it costs: each session reads every table twice (when it begins, to report what persisted before it, and when it
/// ends), so a session's cost grows with what the tables hold. Updating rather than deleting a row that changed keeps
/// the rows that refer to it (no cascade runs), and the order of the steps (delete children first, then update and
/// insert parents first) satisfies the foreign keys of any schema whose rows the session did not re-point to rows it
/// added. Identity values and sequences go back to where they stood when the session began.
/// </para>
/// <para>
/// Not restored: the history tables of temporal tables (the server writes them; the leak check leaves them out too), and
/// memory-optimized tables (SQL Server's cross-container transactions), which the leak check still compares.
/// </para>
/// </remarks>
internal sealed class SqlServerChangeTracker : ChangeTracker
{
    const string Catalog = """
        SELECT t.object_id, QUOTENAME(s.name) + N'.' + QUOTENAME(t.name), t.is_memory_optimized
        FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id
        WHERE t.is_ms_shipped = 0 AND s.name <> N'testkit' AND t.temporal_type <> 1;
        SELECT c.object_id, QUOTENAME(c.name), TYPE_NAME(c.system_type_id), c.is_identity
        FROM sys.columns c JOIN sys.tables t ON t.object_id = c.object_id
        WHERE t.is_ms_shipped = 0 AND c.is_computed = 0 AND c.generated_always_type = 0 AND TYPE_NAME(c.system_type_id) NOT IN (N'timestamp', N'rowversion')
        ORDER BY c.object_id, c.column_id;
        -- The key by which rows are matched: the primary key, else a unique index whose columns allow no NULL.
        SELECT i.object_id, i.index_id, i.is_primary_key, QUOTENAME(c.name), c.is_nullable
        FROM sys.indexes i JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
        JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id JOIN sys.tables t ON t.object_id = i.object_id
        WHERE t.is_ms_shipped = 0 AND i.is_unique = 1 AND ic.is_included_column = 0 AND i.has_filter = 0
        ORDER BY i.object_id, i.is_primary_key DESC, i.index_id, ic.key_ordinal;
        SELECT parent_object_id, referenced_object_id FROM sys.foreign_keys;
        """;

    readonly IReadOnlyList<Unit> _units;
    Dictionary<int, IdentityPosition> _identitiesAtBegin = [];
    Dictionary<string, SequencePosition> _sequencesAtBegin = new(StringComparer.Ordinal);

    SqlServerChangeTracker(IReadOnlyList<Unit> units) => _units = units;

    /// <summary>A table the kit restores.</summary>
    /// <param name="Id">Its object id.</param>
    /// <param name="Name">Its quoted name.</param>
    /// <param name="Level">Its place in the order of foreign keys: parents before children.</param>
    /// <param name="Columns">The columns it restores: not those the server writes itself.</param>
    /// <param name="Key">The columns that identify a row; empty when the table has no key, and is restored whole.</param>
    /// <param name="IdentityColumn">Its identity column, if it has one.</param>
    /// <param name="Snapshot">Its copy, when it held rows once prepared.</param>
    sealed record Unit(int Id, string Name, int Level, IReadOnlyList<TableColumn> Columns, IReadOnlyList<string> Key, string? IdentityColumn, string? Snapshot)
    {
        public IEnumerable<TableColumn> Updatable => Columns.Where(c => !Key.Contains(c.Name) && c.Name != IdentityColumn);
    }

    sealed record SequencePosition(long? LastUsed, long Start, long Increment);

    sealed record IdentityPosition(long? Last, long Seed, long Increment);

    public static async Task<ChangeTracker> InstallAsync(SqlConnection connection, CancellationToken cancellationToken)
    {
        var tables = new List<(int Id, string Name, bool MemoryOptimized)>();
        var columns = new Dictionary<int, List<TableColumn>>();
        var identities = new Dictionary<int, string>();
        var keys = new Dictionary<int, List<string>>();
        var foreignKeys = new List<(long Child, long Parent)>();
        await using (var catalog = new SqlCommand(Catalog, connection))
        await using (var reader = await catalog.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                tables.Add((reader.GetInt32(0), reader.GetString(1), reader.GetBoolean(2)));

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var id = reader.GetInt32(0);
                if (!columns.TryGetValue(id, out var list))
                    columns[id] = list = [];
                list.Add(new TableColumn(reader.GetString(1), reader.GetString(2)));
                if (reader.GetBoolean(3))
                    identities[id] = reader.GetString(1);
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            var candidates = new List<(int Table, int Index, string Column, bool Nullable)>();
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                candidates.Add((reader.GetInt32(0), reader.GetInt32(1), reader.GetString(3), reader.GetBoolean(4)));
            foreach (var table in candidates.GroupBy(c => c.Table))
            {
                // The first index in the order read (the primary key first) whose columns are all NOT NULL.
                if (table.GroupBy(c => c.Index).FirstOrDefault(index => index.All(c => !c.Nullable)) is { } key)
                    keys[table.Key] = key.Select(c => c.Column).ToList();
            }

            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                foreignKeys.Add((reader.GetInt32(0), reader.GetInt32(1)));
        }

        var restored = tables.Where(t => !t.MemoryOptimized && columns.ContainsKey(t.Id)).ToList();
        var filled = new HashSet<int>();
        if (restored.Count > 0)
        {
            var probe = string.Join("\nUNION ALL ", restored.Select(t => $"SELECT {t.Id} WHERE EXISTS (SELECT 1 FROM {t.Name})"));
            await using var command = new SqlCommand(probe, connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                filled.Add(reader.GetInt32(0));
        }

        var levels = TableOrder.Levels(restored.Select(t => (long)t.Id), foreignKeys);
        var units = restored
            .Select(t => new Unit(t.Id, t.Name, levels[t.Id], columns[t.Id], keys.TryGetValue(t.Id, out var key) ? key : [],
                identities.GetValueOrDefault(t.Id), filled.Contains(t.Id) ? $"[testkit].[snapshot_{t.Id}]" : null))
            .OrderBy(u => u.Level).ThenBy(u => u.Name, StringComparer.Ordinal)
            .ToList();

        var sql = new StringBuilder("SET XACT_ABORT ON; SET LOCK_TIMEOUT 10000;\nIF SCHEMA_ID(N'testkit') IS NULL EXEC (N'CREATE SCHEMA testkit');\nBEGIN TRANSACTION;\n");
        foreach (var unit in units.Where(u => u.Snapshot is not null))
        {
            sql.Append(CultureInfo.InvariantCulture, $"SELECT {List(unit.Columns.Select(c => c.Name))} INTO {unit.Snapshot} FROM {unit.Name};\n");
            if (unit.Key.Count > 0)
                sql.Append(CultureInfo.InvariantCulture, $"CREATE UNIQUE CLUSTERED INDEX [key] ON {unit.Snapshot} ({List(unit.Key)});\n");
        }

        sql.AppendLine("COMMIT;");
        try
        {
            await using var install = new SqlCommand(sql.ToString(), connection) { CommandTimeout = 0 };
            await install.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SqlException exception) when (exception.Number == LockTimeout)
        {
            throw new TestScopeException(
                "The first real-commit test of the run could not copy the tables it restores: a transaction still open holds a table (a scope that is " +
                "never disposed, or a class's shared seed — SeededDatabaseTest — waiting for its next test). The NUnit integration copies them before the " +
                "first test when the test assembly has a [RealCommits] test; outside it, begin the first session before other scopes.", exception);
        }

        return new SqlServerChangeTracker(units);
    }

    /// <summary>SQL Server's error for a lock wait that <c>LOCK_TIMEOUT</c> ended.</summary>
    const int LockTimeout = 1222;

    static string List(IEnumerable<string> names) => string.Join(", ", names);

    static string Literal(string value) => $"N'{value.Replace("'", "''", StringComparison.Ordinal)}'";

    /// <summary>Reports the tables that differ from their copy (what persisted since the last reset), and notes where identities and sequences stand.</summary>
    public override async Task<IReadOnlyList<string>> BeginAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var sql = (SqlConnection)connection;
        var differing = await DifferingAsync(sql, cancellationToken).ConfigureAwait(false);
        _identitiesAtBegin = await IdentitiesAsync(sql, cancellationToken).ConfigureAwait(false);
        _sequencesAtBegin = await SequencesAsync(sql, cancellationToken).ConfigureAwait(false);
        return differing.Select(u => u.Name).Order(StringComparer.Ordinal).ToList();
    }

    public override async Task<IReadOnlyList<string>> ResetAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var sql = (SqlConnection)connection;
        var differing = await DifferingAsync(sql, cancellationToken).ConfigureAwait(false);
        var batch = new StringBuilder("SET XACT_ABORT ON; SET NOCOUNT ON; SET LOCK_TIMEOUT 10000;\nBEGIN TRANSACTION;\n");

        var triggers = differing.Count == 0 ? [] : await EnabledTriggersAsync(sql, differing, cancellationToken).ConfigureAwait(false);
        foreach (var (trigger, table) in triggers)
            batch.Append(CultureInfo.InvariantCulture, $"DISABLE TRIGGER {trigger} ON {table};\n");
        foreach (var unit in differing.OrderByDescending(u => u.Level))
            batch.Append(Delete(unit));
        foreach (var unit in differing.OrderBy(u => u.Level))
            batch.Append(Update(unit)).Append(Insert(unit));
        foreach (var (trigger, table) in triggers)
            batch.Append(CultureInfo.InvariantCulture, $"ENABLE TRIGGER {trigger} ON {table};\n");

        var rewound = new List<string>();
        foreach (var (id, now) in await IdentitiesAsync(sql, cancellationToken).ConfigureAwait(false))
        {
            if (!_identitiesAtBegin.TryGetValue(id, out var before) || before.Last == now.Last)
                continue;

            // RESEED n: the next row gets n + increment on a table that has had rows since it was created or truncated (the
            // reset's own inserts count), n itself on one that has not.
            var unit = _units.First(u => u.Id == id);
            var reseed = before.Last is { } last
                ? last
                : differing.Contains(unit) && unit.Snapshot is not null || now.Last is not null ? now.Seed - now.Increment : now.Seed;
            batch.Append(CultureInfo.InvariantCulture, $"DBCC CHECKIDENT ('{unit.Name.Replace("'", "''", StringComparison.Ordinal)}', RESEED, {reseed}) WITH NO_INFOMSGS;\n");
            rewound.Add(unit.Name);
        }

        foreach (var (name, now) in await SequencesAsync(sql, cancellationToken).ConfigureAwait(false))
        {
            if (_sequencesAtBegin.TryGetValue(name, out var before) && before.LastUsed != now.LastUsed)
            {
                var restart = before.LastUsed is { } last ? last + before.Increment : before.Start;
                batch.Append(CultureInfo.InvariantCulture, $"ALTER SEQUENCE {name} RESTART WITH {restart};\n");
            }
        }

        batch.AppendLine("COMMIT;");
        try
        {
            await using (var restore = new SqlCommand(batch.ToString(), sql) { CommandTimeout = 0 })
                await restore.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SqlException exception)
        {
            var cause = exception.Number switch
            {
                LockTimeout => "a transaction still open holds a lock on a table to restore (one the test left open, or a class's shared seed — " +
                               "SeededDatabaseTest — that holds rows of it): end every transaction and close every connection before the test ends",
                547 => $"the tables' foreign keys refuse the order of the reset: the session made rows it kept refer to rows it added, or the schema has " +
                       $"a cycle of foreign keys ({exception.Message})",
                2627 or 2601 => $"a unique key refuses the order of the reset: the session moved a unique value from one row to another ({exception.Message})",
                _ => exception.Message,
            };
            throw new TestScopeException(
                $"The reset after a real-commit test failed, so the run's database may keep what the test committed: {cause}. The run's leak check reports what stayed.", exception);
        }

        if (await DifferingAsync(sql, cancellationToken).ConfigureAwait(false) is { Count: > 0 } still)
        {
            throw new TestScopeException(
                $"The reset after a real-commit test left {string.Join(", ", still.Select(u => u.Name))} different from the state the run prepared. The run's leak check reports what stayed.");
        }

        return differing.Select(u => u.Name).Concat(rewound).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The tables whose rows differ from their copy, in one query.</summary>
    async Task<List<Unit>> DifferingAsync(SqlConnection connection, CancellationToken cancellationToken)
    {
        var differing = new List<Unit>();
        if (_units.Count == 0)
            return differing;

        var query = string.Join("\nUNION ALL ", _units.Select(unit => $"SELECT {unit.Id} WHERE {Differs(unit)}"));
        await using var command = new SqlCommand(query, connection) { CommandTimeout = 0 };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var id = reader.GetInt32(0);
            differing.Add(_units.First(u => u.Id == id));
        }

        return differing;
    }

    static string Differs(Unit unit)
    {
        if (unit.Snapshot is not { } snapshot)
            return $"EXISTS (SELECT 1 FROM {unit.Name})";
        if (unit.Key.Count == 0)
        {
            return $"(SELECT COUNT_BIG(*) FROM {unit.Name}) <> (SELECT COUNT_BIG(*) FROM {snapshot}) " +
                   $"OR (SELECT {Digest(unit, "t")} FROM {unit.Name} t) <> (SELECT {Digest(unit, "s")} FROM {snapshot} s)";
        }

        return $"EXISTS (SELECT 1 FROM {unit.Name} t WHERE NOT EXISTS (SELECT 1 FROM {snapshot} s WHERE {KeyMatch(unit)})) " +
               $"OR EXISTS (SELECT 1 FROM {snapshot} s WHERE NOT EXISTS (SELECT 1 FROM {unit.Name} t WHERE {KeyMatch(unit)})) " +
               $"OR EXISTS (SELECT 1 FROM {unit.Name} t JOIN {snapshot} s ON {KeyMatch(unit)} WHERE {RowHash(unit, "t")} <> {RowHash(unit, "s")})";
    }

    static string KeyMatch(Unit unit) => string.Join(" AND ", unit.Key.Select(k => $"s.{k} = t.{k}"));

    static string RowHash(Unit unit, string alias) => $"HASHBYTES('SHA2_256', {SqlServerDatabaseProvider.RowText(unit.Columns, alias)})";

    static string Digest(Unit unit, string alias) => SqlServerDatabaseProvider.RowsDigest(RowHash(unit, alias));

    static string Delete(Unit unit) => unit switch
    {
        { Snapshot: null } or { Key.Count: 0 } => $"DELETE FROM {unit.Name};\n",
        _ => $"DELETE t FROM {unit.Name} t WHERE NOT EXISTS (SELECT 1 FROM {unit.Snapshot} s WHERE {KeyMatch(unit)});\n",
    };

    static string Update(Unit unit) =>
        unit.Snapshot is null || unit.Key.Count == 0 || !unit.Updatable.Any()
            ? string.Empty
            : $"UPDATE t SET {string.Join(", ", unit.Updatable.Select(c => $"{c.Name} = s.{c.Name}"))} FROM {unit.Name} t JOIN {unit.Snapshot} s ON {KeyMatch(unit)} " +
              $"WHERE {RowHash(unit, "t")} <> {RowHash(unit, "s")};\n";

    static string Insert(Unit unit)
    {
        if (unit.Snapshot is not { } snapshot)
            return string.Empty;

        var columns = List(unit.Columns.Select(c => c.Name));
        var missing = unit.Key.Count == 0 ? string.Empty : $" WHERE NOT EXISTS (SELECT 1 FROM {unit.Name} t WHERE {KeyMatch(unit)})";
        var insert = $"INSERT INTO {unit.Name} ({columns}) SELECT {List(unit.Columns.Select(c => $"s.{c.Name}"))} FROM {snapshot} s{missing};";
        return unit.IdentityColumn is null
            ? insert + "\n"
            : $"SET IDENTITY_INSERT {unit.Name} ON; {insert} SET IDENTITY_INSERT {unit.Name} OFF;\n";
    }

    static async Task<List<(string Trigger, string Table)>> EnabledTriggersAsync(SqlConnection connection, IReadOnlyCollection<Unit> units, CancellationToken cancellationToken)
    {
        var triggers = new List<(string, string)>();
        await using var command = new SqlCommand(
            "SELECT QUOTENAME(OBJECT_SCHEMA_NAME(tr.object_id)) + N'.' + QUOTENAME(tr.name), tr.parent_id FROM sys.triggers tr " +
            $"WHERE tr.parent_class = 1 AND tr.is_disabled = 0 AND tr.parent_id IN ({string.Join(", ", units.Select(u => u.Id.ToString(CultureInfo.InvariantCulture)))})",
            connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var parent = reader.GetInt32(1);
            triggers.Add((reader.GetString(0), units.First(u => u.Id == parent).Name));
        }

        return triggers;
    }

    /// <summary>Where the identity of each restored table that has one stands: its last value (<see langword="null"/> where none was taken), seed and increment.</summary>
    async Task<Dictionary<int, IdentityPosition>> IdentitiesAsync(SqlConnection connection, CancellationToken cancellationToken)
    {
        var identities = new Dictionary<int, IdentityPosition>();
        var ids = _units.Where(u => u.IdentityColumn is not null).Select(u => u.Id.ToString(CultureInfo.InvariantCulture)).ToList();
        if (ids.Count == 0)
            return identities;

        await using var command = new SqlCommand(
            "SELECT object_id, CAST(last_value AS bigint), CAST(seed_value AS bigint), CAST(increment_value AS bigint) " +
            $"FROM sys.identity_columns WHERE object_id IN ({string.Join(", ", ids)})", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            identities[reader.GetInt32(0)] = new IdentityPosition(reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
        return identities;
    }

    /// <remarks>
    /// <c>last_used_value</c> (SQL Server 2017 and later) is NULL until a sequence's first use; before 2017 only
    /// <c>current_value</c> exists, which holds the start value both before the first use and after it.
    /// </remarks>
    static async Task<Dictionary<string, SequencePosition>> SequencesAsync(SqlConnection connection, CancellationToken cancellationToken)
    {
        const string query = """
            IF COL_LENGTH('sys.sequences', 'last_used_value') IS NOT NULL
                EXEC (N'SELECT QUOTENAME(s.name) + N''.'' + QUOTENAME(q.name), CAST(q.last_used_value AS bigint), CAST(q.start_value AS bigint), CAST(q.increment AS bigint)
                        FROM sys.sequences q JOIN sys.schemas s ON s.schema_id = q.schema_id WHERE s.name <> N''testkit''');
            ELSE
                SELECT QUOTENAME(s.name) + N'.' + QUOTENAME(q.name), CAST(q.current_value AS bigint), CAST(q.start_value AS bigint), CAST(q.increment AS bigint)
                FROM sys.sequences q JOIN sys.schemas s ON s.schema_id = q.schema_id WHERE s.name <> N'testkit';
            """;
        var sequences = new Dictionary<string, SequencePosition>(StringComparer.Ordinal);
        await using var command = new SqlCommand(query, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            sequences[reader.GetString(0)] = new SequencePosition(reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
        return sequences;
    }
}

using System.Globalization;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// The run's backstop against anything that persists: what every table held once the run's database was prepared,
/// compared with what it holds later. It sees every way a row can be committed — a connection closed before the test
/// ended, a statement that slipped past the kit, another process — because it looks at the tables themselves.
/// </summary>
/// <remarks>
/// It reads committed data only, so tests running meanwhile, whose writes are uncommitted, do not disturb it. It
/// cannot tell which test committed a change; the per-test bypass report can, for code that runs in the test's flow.
/// </remarks>
internal sealed class LeakCheck(TestDatabase database, string connectionString, string serverConnectionString)
{
    readonly Lock _gate = new();
    readonly List<string> _leakedBeforeSessions = [];
    int _leakedBeforeSessionsReported;
    IReadOnlyDictionary<string, TableContents>? _prepared;
    IReadOnlyDictionary<string, TableContents>? _lastSeen;
    IReadOnlySet<string>? _serverObjects;

    public bool HasPreparedState => Volatile.Read(ref _prepared) is not null;

    public void ClearPool() => database.Provider.ClearPool(connectionString);

    /// <summary>Records what every table holds now; from what the template kept, for a copy of a schema template.</summary>
    public async Task RecordPreparedStateAsync(bool fromTemplate, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<string, TableContents>? contents = null;
        if (fromTemplate)
        {
            await using var connection = database.Provider.CreateConnection(connectionString);
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            contents = await database.Provider.ReadStoredPreparedStateAsync(connection, cancellationToken).ConfigureAwait(false);
        }

        contents ??= await ReadAsync(cancellationToken).ConfigureAwait(false);
        var serverObjects = await ReadServerObjectsAsync(cancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            _prepared = _lastSeen = contents;
            _serverObjects = serverObjects;
        }
    }

    /// <summary>
    /// The server's databases and roles (logins), but for the kit's own (named <c>testkit_…</c>: the run databases of
    /// this and other runs, templates): what a test that creates one must drop again.
    /// </summary>
    async Task<IReadOnlySet<string>> ReadServerObjectsAsync(CancellationToken cancellationToken)
    {
        var objects = new HashSet<string>(StringComparer.Ordinal);
        await using var connection = database.Provider.CreateConnection(serverConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = database.Provider.ListServerObjectsSql;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var (kind, name) = (reader.GetString(0), reader.GetString(1));
            if (!name.StartsWith("testkit_", StringComparison.OrdinalIgnoreCase))
                objects.Add($"{kind} {name}");
        }

        return objects;
    }

    /// <summary>Keeps the recorded prepared state in the database, for the copies of a schema template made from it.</summary>
    public async Task StorePreparedStateAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _prepared) is not { } prepared)
            return;
        await using var connection = database.Provider.CreateConnection(connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await database.Provider.StorePreparedStateAsync(connection, prepared, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Compares <paramref name="tables"/>, which something committed to while no real-commit session ran, with their
    /// prepared state, and keeps those that differ: the session's reset may put them back, and the leak check must still
    /// report them. A table written and put back by the same code (a test that cleans up after itself) is no leak.
    /// </summary>
    public async Task NoteChangedBeforeSessionAsync(IReadOnlyCollection<string> tables, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _prepared) is not { } prepared || tables.Count == 0)
            return;

        await using var connection = database.Provider.CreateConnection(connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        var now = await database.Provider.ReadTableContentsAsync(connection, tables.ToHashSet(StringComparer.Ordinal), cancellationToken).ConfigureAwait(false);
        if (Describe(prepared.Where(t => tables.Contains(t.Key)).ToDictionary(), now) is not { } changes)
            return;

        lock (_gate)
        {
            foreach (var change in changes.Split("\n  "))
                _leakedBeforeSessions.Add($"{change} (found when a real-commit test began: committed outside every test scope and real-commit session)");
        }
    }

    /// <summary>The changes since the prepared state, and those found before real-commit sessions; <see langword="null"/> when there are none.</summary>
    public async Task<string?> FindLeaksAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _prepared) is not { } prepared)
            return null;
        var now = Describe(prepared, await ReadAsync(cancellationToken).ConfigureAwait(false));
        var created = Volatile.Read(ref _serverObjects) is { } before
            ? (await ReadServerObjectsAsync(cancellationToken).ConfigureAwait(false)).Except(before).Order(StringComparer.Ordinal)
                .Select(created => $"{created}: created on the server during the run and not dropped")
            : [];
        lock (_gate)
            return Join(_leakedBeforeSessions.Distinct(StringComparer.Ordinal).Append(now).Concat(created));
    }

    /// <summary>The changes since the last look, which this look replaces, and those found before sessions since: each change is reported once.</summary>
    public async Task<string?> FindNewLeaksAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _prepared) is null)
            return null;

        var now = await ReadAsync(cancellationToken).ConfigureAwait(false);
        IReadOnlyDictionary<string, TableContents> before, prepared;
        List<string> found;
        lock (_gate)
        {
            before = _lastSeen!;
            prepared = _prepared!;
            _lastSeen = now;
            found = _leakedBeforeSessions.Skip(_leakedBeforeSessionsReported).ToList();
            _leakedBeforeSessionsReported = _leakedBeforeSessions.Count;
        }

        // A table that holds its prepared state is no leak, whatever the last look saw: an application's start-up taken as
        // prepared after this look read the tables, or a leak put back since.
        bool AsPrepared(string table) =>
            now.TryGetValue(table, out var contents) ? prepared.TryGetValue(table, out var recorded) && recorded == contents : !prepared.ContainsKey(table);
        return Join(found.Append(Describe(
            before.Where(table => !AsPrepared(table.Key)).ToDictionary(StringComparer.Ordinal),
            now.Where(table => !AsPrepared(table.Key)).ToDictionary(StringComparer.Ordinal))));
    }

    /// <summary>What every table holds now, for comparing an application's start-up; <see langword="null"/> while no prepared state is recorded.</summary>
    public async Task<IReadOnlyDictionary<string, TableContents>?> ReadForApplicationStartAsync(CancellationToken cancellationToken) =>
        HasPreparedState ? await ReadAsync(cancellationToken).ConfigureAwait(false) : null;

    /// <summary>
    /// Takes what an application's start-up changed, from <paramref name="before"/> to <paramref name="after"/>, into the
    /// prepared state, as the run's preparation would have made it: production starts the application before its first
    /// request too. A table that differed from its prepared state already before the start keeps it, so that what leaked
    /// there is still reported. Returns the changes taken, one per line; <see langword="null"/> when there were none.
    /// </summary>
    public string? AcceptApplicationStart(IReadOnlyDictionary<string, TableContents> before, IReadOnlyDictionary<string, TableContents> after)
    {
        var changed = before.Keys.Union(after.Keys, StringComparer.Ordinal)
            .Where(table => before.TryGetValue(table, out var was) != after.TryGetValue(table, out var now) || was != now)
            .ToList();
        if (changed.Count == 0)
            return null;

        lock (_gate)
        {
            var prepared = new Dictionary<string, TableContents>(_prepared!, StringComparer.Ordinal);
            var lastSeen = new Dictionary<string, TableContents>(_lastSeen!, StringComparer.Ordinal);
            var accepted = new List<string>();
            foreach (var table in changed)
            {
                var asPrepared = before.TryGetValue(table, out var was)
                    ? prepared.TryGetValue(table, out var recorded) && recorded == was
                    : !prepared.ContainsKey(table);
                if (!asPrepared)
                    continue;

                accepted.Add(table);
                if (after.TryGetValue(table, out var now))
                    prepared[table] = lastSeen[table] = now;
                else
                {
                    prepared.Remove(table);
                    lastSeen.Remove(table);
                }
            }

            _prepared = prepared;
            _lastSeen = lastSeen;
            return Describe(
                before.Where(t => accepted.Contains(t.Key)).ToDictionary(StringComparer.Ordinal),
                after.Where(t => accepted.Contains(t.Key)).ToDictionary(StringComparer.Ordinal));
        }
    }

    static string? Join(IEnumerable<string?> parts) =>
        parts.Where(part => part is not null).ToList() is { Count: > 0 } lines ? string.Join("\n  ", lines) : null;

    async Task<IReadOnlyDictionary<string, TableContents>> ReadAsync(CancellationToken cancellationToken)
    {
        await using var connection = database.Provider.CreateConnection(connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await database.Provider.ReadTableContentsAsync(connection, cancellationToken).ConfigureAwait(false);
    }

    static string? Describe(IReadOnlyDictionary<string, TableContents> before, IReadOnlyDictionary<string, TableContents> after)
    {
        var changes = new List<string>();
        foreach (var (table, was) in before.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (!after.TryGetValue(table, out var now))
                changes.Add($"{table}: the table is gone (it had {Rows(was.Rows)})");
            else if (now.Rows != was.Rows)
                changes.Add($"{table}: {Rows(was.Rows)} before, {Rows(now.Rows)} now");
            else if (now.Digest != was.Digest)
                changes.Add($"{table}: {Rows(now.Rows)} before and now, but their contents changed");
        }

        foreach (var (table, now) in after.Where(t => !before.ContainsKey(t.Key)).OrderBy(t => t.Key, StringComparer.Ordinal))
            changes.Add($"{table}: a new table, with {Rows(now.Rows)}");

        return changes.Count == 0 ? null : string.Join("\n  ", changes);
    }

    static string Rows(long count) => count == 1 ? "1 row" : string.Create(CultureInfo.InvariantCulture, $"{count} rows");
}

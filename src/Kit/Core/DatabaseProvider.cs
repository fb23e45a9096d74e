using System.Data.Common;
using Linq2DbTestKit.Internal;
using LinqToDB.DataProvider;

namespace Linq2DbTestKit;

/// <summary>
/// A database the kit can run tests on. Each provider lives in its own package and depends only on its own driver:
/// <c>Linq2DbTestKit.PostgreSql</c> (Npgsql) and <c>Linq2DbTestKit.SqlServer</c> (Microsoft.Data.SqlClient).
/// </summary>
/// <remarks>
/// The members the kit calls to open connections, name savepoints, create and drop databases and classify errors are
/// internal: the contract is not yet public, so that it can change as providers are added.
/// </remarks>
public abstract class DatabaseProvider
{
    private protected DatabaseProvider()
    {
    }

    /// <summary>The name that selects this provider in <see cref="TestKitEnvironment.ProviderVariable"/>: <c>postgres</c> or <c>sqlserver</c>.</summary>
    public abstract string Name { get; }

    /// <summary>The database's name for people: <c>PostgreSQL</c>, <c>SQL Server</c>.</summary>
    public abstract string DisplayName { get; }

    /// <summary>The environment variable that holds this provider's connection string.</summary>
    public abstract string ConnectionVariable { get; }

    /// <summary>The connection string used when <see cref="ConnectionVariable"/> is not set; it matches the local set-up the README describes.</summary>
    public abstract string DefaultConnectionString { get; }

    /// <inheritdoc />
    public override string ToString() => DisplayName;

    internal string MaskedDefaultConnectionString => Parse(DefaultConnectionString, "the default connection string").Masked;

    /// <summary>How to get a server running locally, for the message shown when none answers.</summary>
    internal abstract string StartServerHint { get; }

    /// <summary>
    /// Starts a throwaway server for a run, as <paramref name="mode"/> allows: a container when Docker answers, the
    /// database's own binaries where the provider can use them.
    /// </summary>
    /// <exception cref="TestKitConfigurationException">No way allowed worked; the message says what was tried and what to install or set.</exception>
    internal abstract Task<ThrowawayServer> StartServerAsync(ServerStart mode, CancellationToken cancellationToken);

    /// <summary>Parses and validates a connection string; the exception for a malformed one names <paramref name="source"/>.</summary>
    internal abstract ParsedConnectionString Parse(string connectionString, string source);

    /// <summary>
    /// A connection string to <paramref name="database"/> (or the one it names, when null) on the same server, tagged with
    /// <paramref name="applicationName"/>; for the kit's own connections (<paramref name="kitConnection"/>), never enlisted
    /// in an ambient TransactionScope.
    /// </summary>
    internal abstract string ForDatabase(string connectionString, string? database, string? applicationName, bool kitConnection = true);

    internal abstract DbConnection CreateConnection(string connectionString);

    /// <summary><paramref name="connectionString"/> for the kit's own queries of built-in types (administration, the leak check), opened as cheaply as the driver allows.</summary>
    internal virtual string ForKitQueries(string connectionString) => connectionString;

    /// <summary><paramref name="connectionString"/> with lock waits limited to <see cref="TestDatabase.LockWaitLimit"/>, where the connection string can say so.</summary>
    internal virtual string LimitLockWaits(string connectionString) => connectionString;

    /// <summary>Whether <see cref="LimitLockWaits"/> can say so in a connection string.</summary>
    internal virtual bool LimitsLockWaits => false;

    /// <summary>The database that <paramref name="connectionString"/> names; <see langword="null"/> when it names none or is not this driver's.</summary>
    internal abstract string? DatabaseOf(string connectionString);

    /// <summary>
    /// Whether the linq2db provider depends on the server alone and is detected without a statement, so that the first
    /// scope's connection serves for it; otherwise it is detected on a connection of its own when the database is created.
    /// </summary>
    internal virtual bool DetectsOnAnyOpenConnection => false;

    /// <summary>What kind of server answers on <paramref name="openConnection"/>, for the run's messages; <see langword="null"/> when the provider does not say.</summary>
    /// <exception cref="TestKitConfigurationException">The kit does not support that kind; the message says what to use.</exception>
    internal virtual Task<string?> DescribeServerAsync(DbConnection openConnection, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    /// <summary>The linq2db provider for the server behind <paramref name="openConnection"/>, with its version detected.</summary>
    internal abstract IDataProvider DetectLinqToDBProvider(DbConnection openConnection);

    /// <summary>Whether a committed savepoint is released (<c>RELEASE SAVEPOINT</c>); SQL Server has no release.</summary>
    internal abstract bool CanReleaseSavepoints { get; }

    /// <summary>Whether any failed statement aborts the whole transaction until it rolls back to a savepoint (PostgreSQL).</summary>
    internal abstract bool FailedStatementAbortsTransaction { get; }

    /// <summary>The statement the driver sends for a savepoint action, as the trace shows it; <see langword="null"/> where the database has none (SQL Server's release).</summary>
    internal abstract string? SavepointStatement(SavepointAction action, string name);

    /// <summary>
    /// The statement the kit sends itself for a savepoint action, instead of the driver's savepoint API;
    /// <see langword="null"/> to use the driver's.
    /// </summary>
    internal virtual string? SavepointSentAsStatement(SavepointAction action, string name) => null;

    /// <summary>Refuses a savepoint name the application gives that the database would not take as it is.</summary>
    /// <exception cref="ArgumentException">The name breaks the database's rules; the message says which.</exception>
    internal virtual void CheckSavepointName(string name)
    {
    }

    /// <summary>The name of the savepoint with this sequence number, within the database's limits.</summary>
    internal abstract string SavepointName(long number);

    /// <summary>A unique, valid name for a run's database, beginning with <paramref name="prefix"/>.</summary>
    internal string DatabaseName(string prefix, string runId) => $"{prefix}_{runId}";

    /// <summary>The lexical rules of the database's SQL.</summary>
    internal abstract SqlDialect Dialect { get; }

    /// <summary>What <paramref name="sql"/>, about to run on <paramref name="connection"/>, does to transactions.</summary>
    internal virtual StatementControl ClassifyStatement(string sql, DbConnection connection) => TransactionStatements.Classify(sql, Dialect);

    /// <summary>
    /// Whether <paramref name="transaction"/> is still open, as the driver knows it without asking the server: a
    /// statement that committed or rolled it back, or a server that ended it, leaves the driver's transaction completed.
    /// </summary>
    internal virtual bool IsOpen(DbTransaction transaction)
    {
        try
        {
            // Both drivers refuse to report the isolation level of a transaction that has completed.
            _ = transaction.IsolationLevel;
            return transaction.Connection is not null;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>
    /// The statements that end an application transaction as committed, checking first what its real commit would
    /// check (PostgreSQL's deferred constraints); <see langword="null"/> where a commit sends nothing (SQL Server).
    /// </summary>
    internal virtual string? CheckDeferredConstraintsAndRelease(string savepoint) => null;

    /// <summary>
    /// The statements that end a scope in one round trip: the rollback of the test's transaction, and whatever a session
    /// keeps beyond it that others could wait for; <see langword="null"/> to roll back through the driver's transaction.
    /// Where <see cref="ScopeTransactionDepth"/> is set, it first returns the server's count of open transactions.
    /// </summary>
    internal virtual string? EndOfScopeBatch => null;

    /// <summary>
    /// How the scopes' connections connect and end: <paramref name="connectionString"/> as the scopes use it, and the batch
    /// that ends each scope (<see cref="EndOfScopeBatch"/>); with <see cref="ScopeSessions.EndBatchResetsSession"/> the
    /// batch also resets the session, so the driver's pool need not reset it again on the connection's next use.
    /// </summary>
    internal virtual ScopeSessions ForScopes(string connectionString) => new(connectionString, EndOfScopeBatch, EndBatchResetsSession: false);

    /// <summary>
    /// Whether <paramref name="sql"/> may take a lock that belongs to the session rather than its transaction, which the
    /// rollback leaves held and <see cref="EndOfScopeBatch"/> cannot release: the scope then ends its session instead of
    /// pooling its connection, so that no idle pooled connection holds the lock until its next use.
    /// </summary>
    internal virtual bool MayTakeSessionLock(string sql) => false;

    /// <summary>
    /// How many transactions the server counts open while a scope runs, where it counts them (SQL Server's
    /// <c>@@TRANCOUNT</c>); 0 where it does not. A scope opens the test's transaction this many times, so that a
    /// <c>COMMIT</c> hidden from the kit (in dynamic SQL, a stored procedure) only counts it down instead of committing.
    /// </summary>
    internal virtual int ScopeTransactionDepth => 0;

    /// <summary>The statement that opens the test's transaction once more (see <see cref="ScopeTransactionDepth"/>).</summary>
    internal virtual string? DeepenTransaction => null;

    /// <summary>A query of the server's count of open transactions (see <see cref="ScopeTransactionDepth"/>).</summary>
    internal virtual string? TransactionDepthQuery => null;

    /// <summary>A statement that succeeds unless the transaction is aborted: the kit's question whether it is.</summary>
    internal virtual string HealthProbe => "SELECT 1";

    internal abstract Task<bool> DatabaseExistsAsync(DbConnection admin, string database, CancellationToken cancellationToken);

    /// <summary>Creates <paramref name="database"/> and stamps it with <paramref name="marker"/>, so that the kit can tell it is its own before it drops it.</summary>
    internal abstract Task CreateDatabaseAsync(DbConnection admin, string database, string marker, CancellationToken cancellationToken);

    /// <summary>The marker <see cref="CreateDatabaseAsync"/> stamped on <paramref name="database"/>; <see langword="null"/> when it has none.</summary>
    internal abstract Task<string?> ReadMarkerAsync(DbConnection admin, string database, CancellationToken cancellationToken);

    /// <summary>Closes every other session on <paramref name="database"/> and drops it.</summary>
    internal abstract Task DropDatabaseAsync(DbConnection admin, string database, CancellationToken cancellationToken);

    /// <summary>
    /// The user tables of the database behind <paramref name="connection"/>, each with its row count and a digest of its
    /// contents, read in one statement at read-committed: a test's uncommitted rows are not seen.
    /// </summary>
    internal async Task<IReadOnlyDictionary<string, TableContents>> ReadTableContentsAsync(
        DbConnection connection, CancellationToken cancellationToken) => await ReadTableContentsAsync(connection, only: null, cancellationToken).ConfigureAwait(false);

    /// <summary>What <see cref="ReadTableContentsAsync(DbConnection, CancellationToken)"/> reads, of the tables in <paramref name="only"/> (when given) alone.</summary>
    internal async Task<IReadOnlyDictionary<string, TableContents>> ReadTableContentsAsync(DbConnection connection, ISet<string>? only, CancellationToken cancellationToken)
    {
        var tables = new List<(string Name, List<TableColumn> Columns)>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = ListTablesSql;
            await using var reader = await list.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var name = reader.GetString(0);
                if (only is not null && !only.Contains(name))
                    continue;
                if (tables.Count == 0 || tables[^1].Name != name)
                    tables.Add((name, []));
                if (reader.FieldCount > 1 && !reader.IsDBNull(1))
                    tables[^1].Columns.Add(new TableColumn(reader.GetString(1), reader.GetString(2)));
            }
        }

        var contents = new Dictionary<string, TableContents>(StringComparer.Ordinal);
        if (tables.Count == 0)
            return contents;

        await using var command = connection.CreateCommand();
        command.CommandText = string.Join("\nUNION ALL ", tables.Select((table, i) => TableContentsSql(table.Name, table.Columns, i)));
        await using var rows = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await rows.ReadAsync(cancellationToken).ConfigureAwait(false))
            contents[tables[rows.GetInt32(0)].Name] = new TableContents(rows.GetInt64(1), rows.GetString(2));
        return contents;
    }

    /// <summary>A query of the server's databases and roles (logins): rows of a kind (<c>database</c>, <c>role</c>) and a name.</summary>
    internal abstract string ListServerObjectsSql { get; }

    /// <summary>
    /// A query of the quoted names of the user tables, outside the kit's own <c>testkit</c> schema, ordered by name; where
    /// the digest needs them, each table's row repeats once per column with the column's quoted name and type.
    /// </summary>
    internal abstract string ListTablesSql { get; }

    /// <summary>
    /// A query of one row: <paramref name="index"/>, the row count of <paramref name="table"/> (bigint), and a digest of its
    /// rows as text that does not depend on their order, and changes when any value a row holds does.
    /// </summary>
    internal abstract string TableContentsSql(string table, IReadOnlyList<TableColumn> columns, int index);

    /// <summary>Why this provider keeps no template of a prepared database; <see langword="null"/> when it does.</summary>
    internal virtual string? TemplatesUnsupported => null;

    /// <summary>
    /// Waits until no other run on the server builds or copies <paramref name="template"/>, and holds it, on
    /// <paramref name="admin"/>'s session, until the returned object is disposed; disposing it closes
    /// <paramref name="admin"/> too when <paramref name="closeConnection"/> says so.
    /// </summary>
    internal virtual Task<IAsyncDisposable> LockTemplateAsync(DbConnection admin, string template, bool closeConnection, Action<string>? progress, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>
    /// Holds, on a connection of its own, what tells other runs on the server that the run of <paramref name="database"/>
    /// is alive, until the returned object is disposed; <see langword="null"/> where the provider has no such thing.
    /// </summary>
    internal virtual Task<IAsyncDisposable?> HoldRunAsync(string adminConnectionString, string database, CancellationToken cancellationToken) =>
        Task.FromResult<IAsyncDisposable?>(null);

    /// <summary>Drops the kit's run databases on the server whose run is gone (killed before it could drop them); their names.</summary>
    internal virtual Task<IReadOnlyList<string>> DropDatabasesOfKilledRunsAsync(DbConnection admin, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>([]);

    /// <summary>Marks <paramref name="database"/>, kept on request, so that no later run takes it for a killed run's.</summary>
    internal virtual Task MarkKeptAsync(DbConnection admin, string database, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The fingerprint the kit's template <paramref name="template"/> was built for; <see langword="null"/> when there is none.</summary>
    /// <exception cref="TestKitConfigurationException">A database of that name exists that is not the kit's template.</exception>
    internal virtual Task<string?> ReadTemplateFingerprintAsync(DbConnection admin, string template, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>Creates <paramref name="database"/> as a copy of <paramref name="template"/>, stamped with <paramref name="marker"/>.</summary>
    internal virtual Task CreateDatabaseFromTemplateAsync(DbConnection admin, string database, string template, string marker, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>
    /// Makes <paramref name="template"/> a copy of <paramref name="source"/>, marked as the kit's template for
    /// <paramref name="fingerprint"/>, replacing the one before.
    /// </summary>
    /// <returns><see langword="null"/> when saved; otherwise why not.</returns>
    internal virtual Task<string?> SaveTemplateAsync(DbConnection admin, string source, string template, string fingerprint, Action closeIdleConnections, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>
    /// Renames the spare copy of <paramref name="template"/> made for <paramref name="fingerprint"/>, if there is one, to
    /// <paramref name="database"/>, stamped with <paramref name="marker"/>: a copy made while an earlier run's tests ran.
    /// </summary>
    /// <returns>Whether there was one.</returns>
    internal virtual Task<bool> TryClaimSpareAsync(DbConnection admin, string template, string fingerprint, string database, string marker, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>Makes a spare copy of <paramref name="template"/> for the next run, unless there is one.</summary>
    internal virtual Task MakeSpareAsync(DbConnection admin, string template, string fingerprint, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>Drops the kit's template <paramref name="template"/>, and its spare copy, if there are.</summary>
    internal virtual Task DropTemplateAsync(DbConnection admin, string template, CancellationToken cancellationToken) =>
        throw new NotSupportedException(TemplatesUnsupported);

    /// <summary>
    /// Installs the run's change tracking in the database behind <paramref name="connection"/>, for real-commit sessions:
    /// what notes each written table, and a copy of every table that holds rows now.
    /// </summary>
    internal abstract Task<ChangeTracker> InstallChangeTrackingAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>
    /// Keeps <paramref name="contents"/> in the database behind <paramref name="connection"/>, in the kit's own schema, so
    /// that a copy of it (a schema template's) knows its prepared state without reading every table.
    /// </summary>
    internal virtual Task StorePreparedStateAsync(DbConnection connection, IReadOnlyDictionary<string, TableContents> contents, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    /// <summary>What <see cref="StorePreparedStateAsync"/> kept; <see langword="null"/> when nothing was.</summary>
    internal virtual Task<IReadOnlyDictionary<string, TableContents>?> ReadStoredPreparedStateAsync(DbConnection connection, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<string, TableContents>?>(null);

    /// <summary>Removes pooled connections to the database behind <paramref name="connectionString"/>.</summary>
    internal abstract void ClearPool(string connectionString);

    /// <summary>Why opening a connection failed, in the terms the kit reports.</summary>
    internal abstract ConnectFailure ClassifyConnectFailure(Exception exception);

    /// <summary>
    /// What a failed statement did to the test's transaction, by the error and by what the driver says of
    /// <paramref name="connection"/> afterwards: a timeout on a connection that stays open is not a lost connection.
    /// </summary>
    internal abstract StatementFailure ClassifyStatementFailure(Exception exception, DbConnection connection);

    /// <summary>
    /// Starts reporting every statement the driver runs in this process, from the driver's own diagnostics, in the flow
    /// that ran it. Called once per provider and process.
    /// </summary>
    /// <returns>What stops the reports when disposed.</returns>
    internal abstract IDisposable ObserveStatements(Action<ObservedStatement> onStatement);

    /// <summary>Whether <paramref name="sql"/> is the statement linq2db runs to learn the server's version, not the application's.</summary>
    internal virtual bool IsLinqToDBVersionProbe(string sql) => false;

    /// <summary>
    /// Whether a statement's error (as <see cref="ObserveStatements"/> reports it) says that it waited for a lock until
    /// a limit ended the wait: on a connection that bypasses a test's scope, a lock the scope holds.
    /// </summary>
    internal virtual bool EndedALockWait(string error) => false;

    /// <summary>
    /// Whether the driver's bulk copy must be handed the transaction explicitly (SqlBulkCopy refuses to run on a connection
    /// with a transaction it was not given). linq2db hands over only a transaction the application began, so the kit
    /// begins one for a copy outside any.
    /// </summary>
    internal virtual bool BulkCopyNeedsTransaction => false;
}

/// <summary>A column of a table, as <see cref="DatabaseProvider.ListTablesSql"/> lists it: its quoted name and its type's name.</summary>
internal readonly record struct TableColumn(string Name, string Type);

/// <summary>What a table holds, as the leak check compares it: the row count, and a digest of every row.</summary>
internal readonly record struct TableContents(long Rows, string Digest);

/// <summary>How a database's scopes connect and end: see <see cref="DatabaseProvider.ForScopes"/>.</summary>
/// <param name="ConnectionString">The scopes' connection string.</param>
/// <param name="EndBatch">The statements that end a scope in one round trip; <see langword="null"/> to roll back through the driver's transaction.</param>
/// <param name="EndBatchResetsSession">
/// Whether <paramref name="EndBatch"/> resets the session as well, in place of the driver's pool: a scope whose batch did
/// not run to its end, or that left state the driver keeps beside the session (a prepared statement), closes its
/// connection instead of pooling it.
/// </param>
internal sealed record ScopeSessions(string ConnectionString, string? EndBatch, bool EndBatchResetsSession);

/// <summary>A connection string the kit has parsed: what it needs for messages and for connecting to the run's database.</summary>
/// <param name="Server">Host and port, for messages.</param>
/// <param name="User">The user name, for messages; <see langword="null"/> for integrated security.</param>
/// <param name="Password">The password, only to scrub it from messages.</param>
/// <param name="Database">The database the connection string names, if any.</param>
/// <param name="Masked">The connection string with its password replaced by <c>***</c>.</param>
/// <param name="Host">The host alone, for checking whether anything answers there.</param>
/// <param name="Port">The port, likewise.</param>

internal sealed record ParsedConnectionString(string Server, string? User, string? Password, string? Database, string Masked, string Host, int Port);

internal enum ConnectFailure
{
    /// <summary>Something else; the driver's message says what.</summary>
    Other,

    /// <summary>Nothing accepted the connection: no server at that host and port.</summary>
    Unreachable,

    /// <summary>The host name does not resolve to an address.</summary>
    UnknownHost,

    /// <summary>The server refused the user name or password.</summary>
    AuthenticationFailed,

    /// <summary>The server does not answer in time.</summary>
    Timeout,

    /// <summary>The database named in the connection string does not exist.</summary>
    DatabaseMissing,
}

internal enum StatementFailure
{
    /// <summary>The statement failed; the transaction goes on.</summary>
    StatementOnly,

    /// <summary>The statement failed and took the whole transaction with it (PostgreSQL): nothing runs until a rollback to a savepoint.</summary>
    AbortsTransaction,

    /// <summary>The statement was refused because an earlier failure had already aborted the transaction.</summary>
    TransactionAlreadyAborted,

    /// <summary>The statement was cut short (a timeout, a cancellation) on a connection that stays open: the server may have cancelled it, which aborts the transaction (PostgreSQL).</summary>
    MayHaveAborted,

    /// <summary>The connection to the server is gone.</summary>
    ConnectionLost,
}

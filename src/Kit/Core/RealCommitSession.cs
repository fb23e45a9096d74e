using Linq2DbTestKit.Internal;
using LinqToDB;
using LinqToDB.Data;

namespace Linq2DbTestKit;

/// <summary>
/// A stretch of a run in which code commits for real to the run's database — for what a rolled-back scope cannot
/// show: <c>NOTIFY</c>/<c>LISTEN</c>, sessions that must see each other's commits, background workers, code that opens
/// its own connections, time that passes between transactions. Disposing it returns every table the session changed,
/// and their sequences, to the state the run prepared.
/// </summary>
/// <remarks>
/// <para>
/// A session has the run's database to itself: it begins once every open <see cref="TestScope"/> has ended, and scopes
/// begun meanwhile wait for it to end. Parallel tests therefore never see its commits, and it never sees theirs.
/// </para>
/// <para>
/// The reset costs what the session changed: the first session of a run installs statement-level triggers that note
/// which tables are written, and copies the tables that hold rows; a reset restores only the noted tables (and the
/// tables whose rows refer to them). Schema changes the session makes are not undone.
/// </para>
/// </remarks>
public sealed class RealCommitSession : IAsyncDisposable, IDisposable
{
    static readonly AsyncLocal<RealCommitSession?> CurrentSession = new();

    /// <summary>
    /// The session the calling flow asked for with <see cref="TestDatabase.BeginRealCommitsAsync"/>: claimed before the
    /// method awaits anything, so that the claim flows on in the caller's code as a value set inside an async method
    /// would not.
    /// </summary>
    static readonly AsyncLocal<Claim?> Claimed = new();
    static int active;

    readonly ChangeTracker _tracker;
    readonly Lock _dbLock = new();
    DataConnection? _db;
    int _ended;

    internal RealCommitSession(TestDatabase database, ChangeTracker tracker)
    {
        Database = database;
        _tracker = tracker;
        Options = new DataOptions().UseConnectionString(database.LinqToDBProvider, database.ConnectionString);
        Interlocked.Increment(ref active);
    }

    /// <summary>
    /// The session of the calling flow: the running test's, or the one this flow began with
    /// <see cref="TestDatabase.BeginRealCommitsAsync"/> and has not disposed; <see langword="null"/> when none is.
    /// </summary>
    public static RealCommitSession? Current => CurrentSession.Value ?? Claimed.Value?.Session;

    /// <summary>Claims the session about to begin for the calling flow; called synchronously, before the session exists.</summary>
    internal static Claim ClaimForCallingFlow()
    {
        var claim = new Claim();
        Claimed.Value = claim;
        return claim;
    }

    /// <summary>A session a flow asked for: set once it has begun, cleared when it ends.</summary>
    internal sealed class Claim
    {
        public RealCommitSession? Session { get; set; }
    }

    Claim? _claim;

    internal RealCommitSession WithClaim(Claim claim)
    {
        _claim = claim;
        claim.Session = this;
        return this;
    }

    /// <summary>Whether a session runs anywhere in this process: requests of an application under test then reach the real database.</summary>
    internal static bool AnyActive => Volatile.Read(ref active) > 0;

    /// <summary>The run's database, whose tables the session changes for real.</summary>
    public TestDatabase Database { get; }

    /// <summary>linq2db options on the run's database, outside any scope: what contexts built from them commit stays until the session ends.</summary>
    public DataOptions Options { get; }

    /// <summary>A <see cref="DataConnection"/> on <see cref="Options"/>, made on first use and disposed when the session ends.</summary>
    public DataConnection Db
    {
        get
        {
            lock (_dbLock)
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _ended) != 0, this);
                return _db ??= new DataConnection(Options);
            }
        }
    }

    /// <summary>The tables the reset at the session's end restored; empty until then.</summary>
    public IReadOnlyList<string> RestoredTables { get; private set; } = [];

    /// <summary>Makes <paramref name="session"/> current in the calling flow, for the test framework integrations.</summary>
    internal static void SetCurrent(RealCommitSession? session) => CurrentSession.Value = session;

    /// <inheritdoc />
    public override string ToString() => $"real-commit session in {Database}";

    /// <summary>Restores what the session changed, and lets scopes begin again.</summary>
    /// <exception cref="TestScopeException">The reset failed: the message names the cause; the run's leak check reports what stayed.</exception>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <inheritdoc cref="Dispose"/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0)
            return;

        try
        {
            DataConnection? db;
            lock (_dbLock)
                db = _db;
            if (db is not null)
                await db.DisposeAsync().ConfigureAwait(false);
            RestoredTables = await Database.ResetAsync(_tracker).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref active);
            if (_claim is { } claim && claim.Session == this)
                claim.Session = null;
            if (CurrentSession.Value == this)
                CurrentSession.Value = null;
            Database.EndRealCommits();
        }
    }
}

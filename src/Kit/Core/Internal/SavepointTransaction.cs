using System.Data;
using System.Data.Common;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// An application transaction inside a test scope. It is a savepoint of the test's transaction: committing releases
/// the savepoint (or does nothing where the database cannot release), rolling back returns to it.
/// </summary>
internal sealed class SavepointTransaction : DbTransaction
{
    public SavepointTransaction(TestScopeConnection owner, string name, IsolationLevel isolationLevel, long sequence)
    {
        Owner = owner;
        Name = name;
        IsolationLevel = isolationLevel;
        Sequence = sequence;
    }

    public TestScopeConnection Owner { get; }

    /// <summary>The savepoint's name on the server.</summary>
    public string Name { get; }

    public override IsolationLevel IsolationLevel { get; }

    /// <summary>When it began, in the scope's order of savepoints and failures.</summary>
    public long Sequence { get; }

    /// <summary>The statements that could change data it ran, with when: what its commit makes durable in production.</summary>
    public List<(long Sequence, string Sql)> Writes { get; } = [];

    /// <summary>What it ran that PostgreSQL does only on commit (<c>NOTIFY</c>, <c>LISTEN</c>), with when and the statement.</summary>
    public List<(long Sequence, string What, string Sql)> OnCommit { get; } = [];

    /// <summary>The savepoints the application took inside this transaction, by name, with when it took them.</summary>
    public Dictionary<string, long> Savepoints { get; } = new(StringComparer.Ordinal);

    public SavepointState State { get; private set; }

    /// <summary>Why the transaction ended without its own commit or rollback, for the message of a later call.</summary>
    public string? DiscardedBecause { get; private set; }

    public bool IsActive => State == SavepointState.Active;

    protected override DbConnection? DbConnection => IsActive ? Owner : null;

    public override bool SupportsSavepoints => true;

    TestScope Scope => Owner.Scope;

    public override void Commit() => Scope.Commit(this, async: false, CancellationToken.None).GetAwaiter().GetResult();

    public override Task CommitAsync(CancellationToken cancellationToken = default) =>
        Scope.Commit(this, async: true, cancellationToken).AsTask();

    public override void Rollback() => Scope.Rollback(this, async: false, CancellationToken.None).GetAwaiter().GetResult();

    public override Task RollbackAsync(CancellationToken cancellationToken = default) =>
        Scope.Rollback(this, async: true, cancellationToken).AsTask();

    // Savepoints the application makes inside its own transaction go straight to the server: they nest inside this one.
    public override void Save(string savepointName) =>
        Scope.ApplicationSavepoint(this, SavepointAction.Save, savepointName, async: false, CancellationToken.None).GetAwaiter().GetResult();

    public override Task SaveAsync(string savepointName, CancellationToken cancellationToken = default) =>
        Scope.ApplicationSavepoint(this, SavepointAction.Save, savepointName, async: true, cancellationToken).AsTask();

    public override void Rollback(string savepointName) =>
        Scope.ApplicationSavepoint(this, SavepointAction.Rollback, savepointName, async: false, CancellationToken.None).GetAwaiter().GetResult();

    public override Task RollbackAsync(string savepointName, CancellationToken cancellationToken = default) =>
        Scope.ApplicationSavepoint(this, SavepointAction.Rollback, savepointName, async: true, cancellationToken).AsTask();

    public override void Release(string savepointName) =>
        Scope.ApplicationSavepoint(this, SavepointAction.Release, savepointName, async: false, CancellationToken.None).GetAwaiter().GetResult();

    public override Task ReleaseAsync(string savepointName, CancellationToken cancellationToken = default) =>
        Scope.ApplicationSavepoint(this, SavepointAction.Release, savepointName, async: true, cancellationToken).AsTask();

    // Disposing a transaction that was neither committed nor rolled back rolls it back, as ADO.NET drivers do.
    protected override void Dispose(bool disposing)
    {
        if (disposing && IsActive)
            Scope.Rollback(this, async: false, CancellationToken.None, disposing: true).GetAwaiter().GetResult();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (IsActive)
            await Scope.Rollback(this, async: true, CancellationToken.None, disposing: true).ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    /// <param name="state">How it ended.</param>
    /// <param name="discardedBecause">Why it ended without its own commit or rollback.</param>
    /// <param name="divergesFromProduction">
    /// Whether production would have kept it open: it was another connection's rollback that ended it. The owner's next
    /// use says so.
    /// </param>
    internal void End(SavepointState state, string? discardedBecause = null, bool divergesFromProduction = false)
    {
        State = state;
        DiscardedBecause = discardedBecause;
        if (Owner.Transaction == this)
            Owner.Transaction = null;
        if (divergesFromProduction)
        {
            Owner.Diverged(
                $"The {this} was rolled back because {discardedBecause}. In a test scope the transactions of a test's connections nest in the order " +
                $"they begin; in production they are independent, and this one would still be open, so {Owner.Origin} cannot go on as it would in " +
                "production. Let the inner transaction end before the outer one does, or test this in a real-commit test.");
        }
    }

    public override string ToString() => $"transaction {Name} of {Owner.Origin}";
}

internal enum SavepointState
{
    Active,
    Committed,
    RolledBack,

    /// <summary>Rolled back with a transaction begun before it, or with the test's transaction at the end of the scope.</summary>
    Discarded,
}

internal enum SavepointAction
{
    Save,
    Rollback,
    Release,
}

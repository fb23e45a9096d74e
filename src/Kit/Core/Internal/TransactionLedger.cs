namespace Linq2DbTestKit.Internal;

/// <summary>
/// The rules of a test scope's transactions, without any I/O: which application transactions are open and in what
/// order, who owns each, what a failed statement aborted, what a rollback discards, and where a scope would behave
/// differently from production. The scope asks it what to do, does it on the server, and tells it what happened; it is
/// only ever used under the scope's gate.
/// </summary>
/// <remarks>
/// <para>
/// Application transactions are savepoints of the test's one transaction, so they nest in the order they begin,
/// whichever connection of the scope began them. In production, transactions of different connections are independent.
/// The ledger notices the places where that difference changes what the test sees: a rollback that takes another
/// connection's transaction with it, and a rollback that takes with it what another connection wrote outside any
/// transaction, or committed in a transaction of its own begun later (which production would have made durable).
/// </para>
/// <para>
/// On PostgreSQL a failed statement aborts the transaction until a rollback to a savepoint taken before it. Failures
/// and savepoints share one sequence, so that a rollback knows whether it revives the transaction.
/// </para>
/// </remarks>
internal sealed class TransactionLedger
{
    readonly List<SavepointTransaction> _open = [];
    readonly List<UnprotectedWrite> _unprotectedWrites = [];
    long _sequence;
    long _savepointNumber;

    /// <summary>The open application transactions, oldest first.</summary>
    public IReadOnlyList<SavepointTransaction> Open => _open;

    /// <summary>The statement that aborted the transaction (PostgreSQL), until a rollback to a savepoint taken before it.</summary>
    public FailedStatement? AbortedBy { get; private set; }

    /// <summary>When the kit's statement savepoint was taken; <see langword="null"/> while none is open.</summary>
    public long? StatementSavepoint { get; private set; }

    /// <summary>The next number in the order of savepoints and failures.</summary>
    public long Next() => ++_sequence;

    /// <summary>The number for the next application savepoint's name.</summary>
    public long NextSavepointNumber() => ++_savepointNumber;

    public void Began(SavepointTransaction transaction) => _open.Add(transaction);

    /// <summary>What a commit of <paramref name="transaction"/> must do.</summary>
    public CommitPlan PlanCommit(SavepointTransaction transaction)
    {
        if (!transaction.IsActive)
            return CommitPlan.Refuse;
        if (_open[^1] != transaction)
            return CommitPlan.RefuseNotInnermost;
        return AbortedBy is { } failure && failure.Sequence > transaction.Sequence ? CommitPlan.RollBackAsAborted : CommitPlan.Release;
    }

    /// <summary>
    /// <paramref name="transaction"/> committed. In production its writes are now durable; here they nest in the
    /// transactions of other connections begun before it and still open, whose rollback would undo them: such a commit
    /// is kept like a write outside any transaction, for <see cref="PlanRollback"/> to find.
    /// </summary>
    public void Committed(SavepointTransaction transaction)
    {
        _open.Remove(transaction);
        transaction.End(SavepointState.Committed);
        if (transaction.Writes.Count > 0 && _open.Any(o => o.Owner != transaction.Owner))
            _unprotectedWrites.Add(new UnprotectedWrite(transaction.Owner, string.Join("; ", transaction.Writes.Select(w => w.Sql)), Next(), transaction.Name));
    }

    /// <summary>
    /// What a rollback of <paramref name="transaction"/> takes with it: the transactions begun after it (each another
    /// connection's), and the writes that other connections made outside any transaction of theirs since it began —
    /// in production neither would be undone by it.
    /// </summary>
    public RollbackEffects PlanRollback(SavepointTransaction transaction)
    {
        var index = _open.IndexOf(transaction);
        var discarded = _open.Skip(index + 1).ToArray();
        // The test's own transaction (Scope.Db) may undo what application code did inside it: that is the test's intent.
        var lostWrites = transaction.Owner.TestsOwn
            ? []
            : _unprotectedWrites.Where(w => w.Sequence > transaction.Sequence && w.Connection != transaction.Owner).ToArray();
        return new RollbackEffects(index, discarded, lostWrites);
    }

    public void RolledBack(SavepointTransaction transaction, RollbackEffects effects)
    {
        foreach (var newer in effects.Discarded)
            newer.End(SavepointState.Discarded, $"the {transaction}, begun before it, rolled back", divergesFromProduction: true);

        _open.RemoveRange(effects.Index, _open.Count - effects.Index);
        _unprotectedWrites.RemoveAll(w => w.Sequence > transaction.Sequence);
        transaction.End(SavepointState.RolledBack);
        if (AbortedBy is { } failure && failure.Sequence > transaction.Sequence)
            AbortedBy = null;
        if (StatementSavepoint is { } taken && taken > transaction.Sequence)
            StatementSavepoint = null;
    }

    /// <summary>An application savepoint inside <paramref name="transaction"/> was rolled back to: it revives the transaction if the failure came after it.</summary>
    public void RolledBackToApplicationSavepoint(SavepointTransaction transaction, string name)
    {
        if (transaction.Savepoints.TryGetValue(name, out var taken))
        {
            if (AbortedBy is { } failure && failure.Sequence > taken)
                AbortedBy = null;
            _unprotectedWrites.RemoveAll(w => w.Sequence > taken);
            transaction.Writes.RemoveAll(w => w.Sequence > taken);
            transaction.OnCommit.RemoveAll(w => w.Sequence > taken);
        }
    }

    /// <summary>A statement failed and aborted the transaction (PostgreSQL); the first failure is the one to report.</summary>
    public void Aborted(string sql, string error, string origin) => AbortedBy ??= new FailedStatement(sql, error, Next(), origin);

    /// <summary>
    /// A statement that could change data ran on <paramref name="connection"/>. Inside a transaction of its own, it is
    /// that transaction's, until it commits (<see cref="Committed"/>). Outside any, while another connection's
    /// transaction is open, it is committed at once in production but nests in that transaction here.
    /// </summary>
    public void Wrote(TestScopeConnection connection, string sql)
    {
        if (connection.Transaction is { } own)
            own.Writes.Add((Next(), sql));
        else if (_open.Any(o => o.Owner != connection))
            _unprotectedWrites.Add(new UnprotectedWrite(connection, sql, Next()));
    }

    public void StatementSavepointTaken() => StatementSavepoint = Next();

    public void StatementSavepointReleased() => StatementSavepoint = null;

    /// <summary>The kit's statement savepoint was rolled back to: the statement after it is undone, and the transaction lives again.</summary>
    public void StatementRolledBack()
    {
        if (StatementSavepoint is { } taken)
        {
            if (AbortedBy is { } failure && failure.Sequence > taken)
                AbortedBy = null;
            _unprotectedWrites.RemoveAll(w => w.Sequence > taken);
            foreach (var open in _open)
                open.Writes.RemoveAll(w => w.Sequence > taken);
        }

        StatementSavepoint = null;
    }

    /// <summary>The scope ended: every open transaction was rolled back with the test's.</summary>
    public IReadOnlyList<SavepointTransaction> Ended()
    {
        var open = _open.ToArray();
        foreach (var transaction in open)
            transaction.End(SavepointState.Discarded, "the test's scope ended");
        _open.Clear();
        _unprotectedWrites.Clear();
        return open;
    }
}

internal enum CommitPlan
{
    /// <summary>Release the savepoint: the transaction's writes join whatever encloses it.</summary>
    Release,

    /// <summary>The transaction has completed already.</summary>
    Refuse,

    /// <summary>A transaction begun after it, on another connection, is still open.</summary>
    RefuseNotInnermost,

    /// <summary>A statement failed inside it (PostgreSQL): its COMMIT is a ROLLBACK, as PostgreSQL's is.</summary>
    RollBackAsAborted,
}

/// <summary>What a rollback takes with it.</summary>
/// <param name="Index">Where the transaction stands among the open ones.</param>
/// <param name="Discarded">Transactions of other connections begun after it.</param>
/// <param name="LostWrites">Writes of other connections outside any transaction, made after it began.</param>
internal sealed record RollbackEffects(int Index, IReadOnlyList<SavepointTransaction> Discarded, IReadOnlyList<UnprotectedWrite> LostWrites);

/// <summary>
/// A write that production would have made durable at once, nested in another connection's transaction: one outside any
/// transaction, or all the writes of a transaction that committed (<paramref name="CommittedIn"/>).
/// </summary>
internal sealed record UnprotectedWrite(TestScopeConnection Connection, string Sql, long Sequence, string? CommittedIn = null);

/// <summary>A statement that aborted the transaction; <paramref name="Sequence"/> orders it among the savepoints.</summary>
internal sealed record FailedStatement(string Sql, string Error, long Sequence, string Origin);

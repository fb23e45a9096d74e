namespace Linq2DbTestKit.Internal;

/// <summary>The messages for code that uses a test scope in a way the kit cannot honour, each with its fix.</summary>
internal static class Misuse
{
    public static InvalidOperationException ScopeEnded(TestScope scope) => new(
        $"{scope} has ended: its transaction was rolled back and its connection returned to the pool. " +
        "Something used a connection or DataConnection of the scope after the test finished: usually a task or an HTTP request the test did not await.");

    public static NotSupportedException TransactionScope() => new(
        "A System.Transactions.TransactionScope is active. The kit cannot enlist a test scope's connection in it: the test's own " +
        "transaction must stay the outermost. Use BeginTransaction/Commit/Rollback on the DataConnection or connection instead; " +
        "inside a test scope they become savepoints.");

    public static InvalidOperationException TransactionStatement(string sql, string origin) => new(
        $"{origin} sent a statement that begins or ends a transaction by itself: {Shorten(sql)}. Inside a test scope that would end the " +
        "test's transaction behind the kit's back and leave the test's writes in the database. Use BeginTransaction, Commit and Rollback " +
        "of the DataConnection or connection instead; the kit turns them into savepoints.");

    public static InvalidOperationException SecondTransaction(ScopeConnection connection, SavepointTransaction active) => new(
        $"{connection.Origin} already has a transaction ({active.Name}); a connection holds one transaction at a time, as the real driver " +
        "does. To nest transactions, begin the inner one on another DataConnection or connection of the same scope: it becomes a savepoint inside the outer one.");

    public static InvalidOperationException Completed(SavepointTransaction transaction) => new(
        transaction.DiscardedBecause is { } why
            ? $"The {transaction} is no longer usable: it was rolled back because {why}."
            : $"The {transaction} has completed; it is no longer usable.");

    public static InvalidOperationException CommitUnderOpenTransaction(SavepointTransaction transaction, SavepointTransaction newer) => new(
        $"The {transaction} cannot commit while the {newer}, begun after it on the test's one connection, is still open. " +
        "Transactions in a test scope nest: the inner one must end first. Two transactions interleaved, usually because code ran " +
        "concurrently inside one test (parallel tasks on the scope's connections); run them one after another.");

    public static InvalidOperationException ReaderStillOpen(ScopeConnection waiting, ScopeConnection owner) => new(
        $"{waiting.Origin} waited 30 s for the test's one connection, which {owner.Origin} holds with an open data reader. " +
        "Read the result to the end or dispose the reader before the scope's connection is used elsewhere.");

    public static string Shorten(string sql)
    {
        var text = sql.Trim().ReplaceLineEndings(" ");
        return text.Length <= 200 ? text : string.Concat(text.AsSpan(0, 200), "…");
    }
}

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
        "test's transaction behind the kit's back, committing or rolling it back, and leave the test's writes in the database. Use BeginTransaction, " +
        "Commit and Rollback of the DataConnection or connection instead; the kit turns them into savepoints.");

    public static InvalidOperationException SecondTransaction(TestScopeConnection connection, SavepointTransaction active) => new(
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

    public static InvalidOperationException ReaderStillOpen(TestScopeConnection waiting, TestScopeConnection owner, string what, string reason) => new(
        $"{waiting.Origin} cannot run {Shorten(what)} now: {owner.Origin} is still reading a result on the test's one connection. In production " +
        "they would be two connections; in a test scope they share one server session, and the kit reads the rest of such a result into memory so " +
        $"that both go on, but not this one: {reason}. Read {owner.Origin}'s result first (ToList, ToArrayAsync) or dispose its reader, then run the statement.");

    public static InvalidOperationException StatementAfterEnd(TestScope scope, TestScopeConnection connection, string what) => new(
        $"The test ended while {connection.Origin} was still waiting to run {Shorten(what)} on the connection of {scope}: the statement " +
        "belongs to a task or an HTTP request the test did not await. Await everything the test starts before it ends.");

    public static InvalidOperationException SavepointAmongOtherStatements(string sql, string origin) => new(
        $"{origin} sent a savepoint statement together with other statements: {Shorten(sql)}. The kit tracks the application's own savepoints " +
        "inside its transactions, which takes a savepoint statement on its own: send it as a command of its own.");

    public static InvalidOperationException SavepointOutsideTransaction(string sql, string origin, string database) => new(
        $"{origin} sent a savepoint statement outside any transaction of its own: {Shorten(sql)}. Outside a test {database} would refuse it " +
        "(a savepoint needs a transaction); inside a test scope it would nest in the test's transaction and succeed. Begin a transaction first.");

    public static InvalidOperationException KitSavepointNamed(string sql, string origin, string name) => new(
        $"{origin} sent a savepoint statement that names {name}, one of the kit's own savepoints: {Shorten(sql)}. The kit keeps the test's application " +
        "transactions as savepoints named testkit_…, and this statement would change them behind its back. Name your own savepoints otherwise, and end " +
        "transactions through the connection (Commit, Rollback).");

    public static InvalidOperationException OutsideTransactionOnly(string sql, string origin, string statement, string database) => new(
        $"{origin} sent {statement}, which {database} runs only outside a transaction, while every statement of a test scope runs in the test's " +
        $"transaction: {Shorten(sql)}. " + OutsideTransactionAdvice);

    /// <summary>A divergence: <paramref name="what"/> ran, which PostgreSQL does only when a transaction commits.</summary>
    public static string TakesEffectOnCommit(string origin, string what, string sql, string? committedTransaction)
    {
        var when = committedTransaction is null
            ? $"{origin} ran {what} outside a transaction of its own ({Shorten(sql)}), which in production would have taken effect at once"
            : $"{origin} committed its transaction {committedTransaction}, which ran {what} ({Shorten(sql)}) and in production would have taken effect with the commit";
        var effect = what is "LISTEN" or "UNLISTEN"
            ? "PostgreSQL starts or stops listening when the transaction commits, and the test's transaction never commits, so this connection's listening did not change"
            : "PostgreSQL delivers a notification when the transaction that sent it commits, and the test's transaction never commits, so no listener received it";
        return $"{when}; {effect}. Test code that sends or listens for notifications in a real-commit test ([RealCommits]).";
    }

    /// <summary>What to do with a test that must run a statement no transaction may hold.</summary>
    public const string OutsideTransactionAdvice =
        "Mark the test [RealCommits] (it then commits for real, and the kit resets what it changed), or put it in a class that does not derive " +
        "from DatabaseTest and clean up after it yourself (docs/outside-a-scope.md).";

    public static string Shorten(string sql)
    {
        var text = sql.Trim().ReplaceLineEndings(" ");
        return text.Length <= 200 ? text : string.Concat(text.AsSpan(0, 200), "…");
    }
}

namespace Linq2DbTestKit.Internal;

/// <summary>
/// One test's life around its scope, as the test framework integrations run it: the scope begins and becomes current in
/// the test's flow, and at the end is rolled back, with what went wrong said in words. The NUnit integration and the
/// benchmark of its cost both run this.
/// </summary>
internal static class ScopedTest
{
    /// <summary>Begins the test's scope and makes it current in the calling flow, synchronously, so that the flow keeps it.</summary>
    public static TestScope Begin(TestDatabase database)
    {
        var scope = database.BeginScope();
        TestScope.SetCurrent(scope);
        return scope;
    }

    /// <summary>
    /// Ends the test's scope; the problems that must fail the test, as one message, or <see langword="null"/>. The
    /// rollback may still be on its way when this returns: the next scope waits for it.
    /// </summary>
    public static string? End(TestScope scope)
    {
        TestScope.SetCurrent(null);
        string? ending = null;
        try
        {
            scope.EndBetweenTests();
        }
        catch (Exception exception) when (exception is TestScopeException or InvalidOperationException)
        {
            ending = exception.Message;
        }

        var bypass = BypassMessage(scope);
        return ending is null ? bypass : bypass is null ? ending : $"{ending}\n\n{bypass}";
    }

    /// <summary>Begins the test's real-commit session and makes it current in the calling flow.</summary>
    public static RealCommitSession BeginRealCommits(TestDatabase database)
    {
        var session = database.BeginRealCommitsAsync().GetAwaiter().GetResult();
        RealCommitSession.SetCurrent(session);
        return session;
    }

    /// <summary>Ends the test's real-commit session with its reset; the failure of the reset as a message, or <see langword="null"/>.</summary>
    public static string? EndRealCommits(RealCommitSession session)
    {
        RealCommitSession.SetCurrent(null);
        try
        {
            session.Dispose();
            return null;
        }
        catch (TestScopeException exception)
        {
            return exception.Message;
        }
    }

    /// <summary>Why a real-commit test has no scope, and what it uses instead; <paramref name="run"/> names the integration's run class.</summary>
    public static string NoScopeInRealCommits(RealCommitSession session, string run = "TestRun") =>
        $"This test commits for real ([RealCommits]): it has no scope. Connect with {run}.Database.ConnectionString, or use Db or RealCommits.Options; " +
        $"after the test, the kit returns the tables it changed to their prepared state ({session}).";

    /// <summary>Why a test in a scope has no real-commit session.</summary>
    public const string NoRealCommitsInScope = "This test runs in a scope whose transaction is rolled back: mark it [RealCommits] to commit for real.";

    internal static string? BypassMessage(TestScope scope)
    {
        var statements = scope.BypassStatements;
        if (statements.Count == 0)
            return null;

        if (statements.Select(s => s.Database).Where(d => !string.Equals(d, scope.Database.Name, StringComparison.Ordinal)).Distinct().ToList() is { Count: > 0 } elsewhere)
        {
            return $"While this test ran, code in it wrote to {string.Join(", ", elsewhere.Select(d => $"database '{d}'"))}, not to the run's database " +
                   $"'{scope.Database.Name}': it connected with a connection string other than the test's, most likely the application's own " +
                   "configuration, and what it wrote there is committed and outlives the test; the kit rolls back only the run's database. Give the " +
                   "application TestRun.Database.ConnectionString where it reads its connection string (with WebApplicationFactory: " +
                   "builder.UseSetting(\"ConnectionStrings:…\", …), which the application sees before builder.Build()). A run whose tests write to " +
                   $"other databases on purpose sets {TestKitEnvironment.LeakCheckVariable}=false. Statements:\n  " + string.Join("\n  ", scope.Bypasses);
        }

        if (statements.Select(s => TransactionStatements.OutsideTransactionOnly(s.Text, scope.Database.Provider.Dialect)).FirstOrDefault(s => s is not null) is { } outsideOnly)
        {
            return $"While this test ran, code in it ran {outsideOnly} on a connection of its own to the run's database. {scope.Database.Provider.DisplayName} " +
                   "runs it only outside a transaction, so it cannot run in the test's scope, and what it did is not rolled back. " +
                   $"{Misuse.OutsideTransactionAdvice} Statements:\n  " + string.Join("\n  ", scope.Bypasses);
        }

        if (statements.FirstOrDefault(s => s.Error is not null && scope.Database.Provider.EndedALockWait(s.Error)) is { } waited)
        {
            var limit = scope.Database.Provider.LimitsLockWaits ? $"the lock wait limit of its connection string ({TestDatabase.LockWaitLimit.TotalSeconds:0} s)" : "its command timeout";
            return $"While this test ran, code in it connected to the run's database on a connection of its own (from TestRun.Database.ConnectionString, or " +
                   $"a connection string the code made) instead of joining {scope}, and waited for a lock that the test's scope holds, until {limit} " +
                   $"ended the wait ({waited.Error}). The scope keeps what the test wrote, and what it locked, uncommitted until the test ends, so a " +
                   "connection of its own waits for it; in production that work would have been committed, and nothing would have waited. " +
                   "Build linq2db contexts inside the test (they join its scope), use Scope.OpenConnection() for raw ADO.NET, and send requests with " +
                   "factory.CreateClient(Scope); for code that must use connections of its own, a real-commit test ([RealCommits]). Statements:\n  " +
                   string.Join("\n  ", scope.Bypasses);
        }

        var outcome = statements.Any(s => s.Error is null && s.Writes)
            ? "What it wrote is committed and outlives the test."
            : statements.Any(s => s.Error is null)
                ? "It only read: it saw the database as committed, without what this test wrote in its scope, and wrote nothing."
                : "Its statements failed, so they committed nothing.";
        var cause = scope.SawContextWithItsOwnConnection
            ? " A linq2db context in the test's flow got its connection from the application (DataOptions.UseConnectionFactory or UseConnection), " +
              "which the kit cannot reach: build that context's options from the connection string (UseConnectionString, UsePostgreSQL, UseSqlServer), " +
              "whose connections the kit takes, or register them in the application's services, which WithTestScopes() binds to the test's scope."
            : string.Empty;
        return $"While this test ran, code in it connected to the run's database on a connection of its own (from TestRun.Database.ConnectionString, or " +
               $"a connection string the code made) instead of joining {scope}. {outcome}{cause} Build linq2db contexts inside the test (they join its scope), " +
               "use Scope.OpenConnection() for raw ADO.NET, and send requests with factory.CreateClient(Scope). Statements:\n  " +
               string.Join("\n  ", scope.Bypasses);
    }
}

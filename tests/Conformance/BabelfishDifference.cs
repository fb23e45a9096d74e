using Linq2DbTestKit.NUnit;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance;

/// <summary>
/// A way in which Babelfish for PostgreSQL, on which this repository's SQL Server leg runs where no SQL Server can,
/// behaves differently from SQL Server. A test that fails on Babelfish only because of one calls <see cref="SkipHere"/>:
/// it reports skipped there, naming the difference, and runs everywhere else. Each difference has a test of its own in
/// <c>tests/SqlServer/BabelfishDifferences.cs</c> that pins what Babelfish does today, so that the day it changes, that
/// test says so.
/// </summary>
public sealed class BabelfishDifference
{
    BabelfishDifference(string name, string description)
    {
        Name = name;
        Description = description;
    }

    public string Name { get; }

    public string Description { get; }

    /// <summary>SqlClient's bulk copy asks for the table's columns with an aggregate Babelfish answers with one row only.</summary>
    public static readonly BabelfishDifference BulkCopyColumnList = new(
        "bulk copy's column list",
        "SqlBulkCopy builds its column list with SELECT @c = COALESCE(@c + ', ', '') + QUOTENAME(name) …, of which Babelfish keeps the last row only: " +
        "name mappings fail with 'The given ColumnName … does not match up with any column in data source'");

    /// <summary>WAITFOR does not exist on Babelfish.</summary>
    public static readonly BabelfishDifference NoWaitFor = new("no WAITFOR", "'WAITFOR' is not currently supported in Babelfish");

    /// <summary>Errors that SQL Server raises for the statement alone end the whole transaction on Babelfish.</summary>
    public static readonly BabelfishDifference ErrorsEndTheTransaction = new(
        "errors that end the transaction",
        "a conversion error, or a name of a table, column or procedure that does not exist, ends the whole transaction on Babelfish " +
        "(PostgreSQL's abort), where SQL Server fails the statement or the batch alone");

    /// <summary>Babelfish chooses a deadlock's victim as PostgreSQL does, whatever the sessions' priority.</summary>
    public static readonly BabelfishDifference DeadlockPriorityIgnored = new(
        "no deadlock priority",
        "SET DEADLOCK_PRIORITY LOW is accepted and ignored: the victim is the session whose deadlock check runs first, as on PostgreSQL");

    /// <summary>Babelfish's <c>DBCC CHECKIDENT</c> waits for other transactions that wrote the table.</summary>
    public static readonly BabelfishDifference CheckIdentWaits = new(
        "DBCC CHECKIDENT waits",
        "DBCC CHECKIDENT … RESEED waits for every other open transaction that inserted into the table, where SQL Server reseeds at once: a real-commit " +
        "session's reset that rewinds an identity waits for a class's uncommitted seed rows in that table");

    /// <summary>A T-SQL <c>ROLLBACK</c> of a transaction the driver began is not reported to the driver, which then keeps the connection out of its pool.</summary>
    public static readonly BabelfishDifference RollbackNotReported = new(
        "a T-SQL ROLLBACK is not reported to the driver",
        "after ROLLBACK TRANSACTION sent as SQL, SqlClient still holds the transaction it began open (SQL Server tells it the transaction ended), " +
        "so closing the connection sends a rollback Babelfish refuses and the connection is not pooled: every scope opens a new session");

    /// <summary>Whether the run's server is Babelfish.</summary>
    public static bool OnBabelfish =>
        TestRun.Database is { Provider.Name: "sqlserver", ServerDescription: { } server } && server.StartsWith("Babelfish", StringComparison.Ordinal);

    /// <summary>Ends the calling test as skipped when the run's server is Babelfish, naming this difference.</summary>
    public void SkipHere()
    {
        if (OnBabelfish)
            Assert.Ignore(SkipReason);
    }

    /// <summary>The reason a test that meets this difference gives on Babelfish.</summary>
    public string SkipReason => $"Babelfish differs from SQL Server ({Name}): {Description}. This test runs on SQL Server.";

    /// <inheritdoc />
    public override string ToString() => Name;
}

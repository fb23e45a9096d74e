using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;

namespace PerTestCost;

/// <summary>
/// What every measured test does, whichever fixture isolates it: insert one row through the application's context and
/// count it. The schema has <see cref="Tables"/> tables (BENCH_TABLES): the counter table and empty ones beside it.
/// </summary>
public static class Work
{
    /// <summary>The tests per fixture: each one a result of its own in the TRX file.</summary>
    public static IEnumerable<int> Cases => Enumerable.Range(1, int.Parse(Environment.GetEnvironmentVariable("BENCH_TESTS") ?? "300", System.Globalization.CultureInfo.InvariantCulture));

    public static int Tables => int.Parse(Environment.GetEnvironmentVariable("BENCH_TABLES") ?? "5", System.Globalization.CultureInfo.InvariantCulture);

    public static IEnumerable<string> Schema() =>
        Enumerable.Range(1, Tables - 1).Select(i => $"CREATE TABLE filler_{i} (id serial PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL DEFAULT now())")
            .Prepend("CREATE TABLE counters (id serial PRIMARY KEY, name text NOT NULL)");

    /// <summary>Inserts one row and counts the rows of the test: 1, whatever ran before.</summary>
    public static async Task<int> InsertAndCountAsync(DataConnection db, int test)
    {
        var name = $"test-{test}";
        await db.GetTable<Counter>().InsertAsync(() => new Counter { Name = name });
        return await db.GetTable<Counter>().CountAsync();
    }
}

using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using Linq2DbTestKit.NUnit;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Application code that queries through several contexts at once, as it does in production on several connections:
/// in a scope they share one server session, and a result still being read when another context needs the session is
/// read into memory, so that every interleaving works. Each test runs its interleaving 100 times.
/// </summary>
public abstract class ParallelQueriesSuite : ConformanceTest
{
    const int Rounds = 100;

    async Task SeedAsync(int count)
    {
        await using var db = NewShop();
        for (var i = 0; i < count; i++)
            await db.InsertAsync(new Item { Name = Name($"{i:D2}"), Quantity = i });
    }

    Task<List<string>> NamesOfAsync(ShopDb db) =>
        db.Items.Where(i => i.Name.StartsWith(Tag)).OrderBy(i => i.Name).Select(i => i.Name).ToListAsync();

    [Test]
    public async Task Two_repositories_each_with_its_own_context_queried_with_WhenAll()
    {
        await SeedAsync(20);
        var expected = Enumerable.Range(0, 20).Select(i => Name($"{i:D2}")).ToList();
        for (var round = 0; round < Rounds; round++)
        {
            // Each "repository" builds its own DataConnection, as real ones do.
            async Task<List<string>> Repository()
            {
                await using var db = NewShop();
                return await NamesOfAsync(db);
            }

            var results = await Task.WhenAll(Task.Run(Repository), Task.Run(Repository));
            Assert.That(results, Is.All.EqualTo(expected), $"round {round}");
        }
    }

    [Test]
    public async Task Four_contexts_each_used_by_one_task()
    {
        await SeedAsync(10);
        await using var first = NewShop();
        await using var second = NewShop();
        await using var third = NewShop();
        await using var fourth = NewShop();
        for (var round = 0; round < Rounds; round++)
        {
            var counts = await Task.WhenAll(
                Task.Run(() => first.Items.CountAsync(i => i.Name.StartsWith(Tag))),
                Task.Run(async () => (await NamesOfAsync(second)).Count),
                Task.Run(() => third.Items.Where(i => i.Name.StartsWith(Tag)).SumAsync(i => i.Quantity)),
                Task.Run(async () => (await fourth.Items.Where(i => i.Name.StartsWith(Tag)).ToArrayAsync()).Length));
            Assert.That(counts, Is.EqualTo(new[] { 10, 10, 45, 10 }), $"round {round}");
        }
    }

    [Test]
    public async Task Streaming_one_result_while_another_context_queries_for_each_row()
    {
        await SeedAsync(5);
        await using var streaming = NewShop();
        await using var querying = NewShop();
        for (var round = 0; round < Rounds; round++)
        {
            var seen = new List<(string, int)>();
            await foreach (var item in streaming.Items.Where(i => i.Name.StartsWith(Tag)).OrderBy(i => i.Name).AsAsyncEnumerable())
                seen.Add((item.Name, await querying.Items.CountAsync(i => i.Name.StartsWith(Tag) && i.Quantity <= item.Quantity)));

            Assert.That(seen, Is.EqualTo(Enumerable.Range(0, 5).Select(i => (Name($"{i:D2}"), i + 1))), $"round {round}");
        }
    }

    [Test]
    public async Task Streaming_inside_an_application_transaction_while_another_context_writes_outside_one()
    {
        await SeedAsync(3);
        await using var streaming = NewShop();
        await using var writing = NewShop();
        for (var round = 0; round < Rounds; round++)
        {
            await using var transaction = await streaming.BeginTransactionAsync();
            var names = new List<string>();
            await foreach (var item in streaming.Items.Where(i => i.Name.StartsWith(Tag) && !i.Name.Contains("written")).OrderBy(i => i.Name).AsAsyncEnumerable())
            {
                names.Add(item.Name);
                await writing.Items.Where(i => i.Name == item.Name).Set(i => i.Quantity, round).UpdateAsync();
            }

            await transaction.CommitAsync();
            Assert.That(names, Is.EqualTo(new[] { Name("00"), Name("01"), Name("02") }), $"round {round}");
        }

        Assert.That(await streaming.Items.Where(i => i.Name.StartsWith(Tag)).Select(i => i.Quantity).Distinct().ToListAsync(), Is.EqualTo(new[] { Rounds - 1 }));
    }

    [Test]
    public async Task Raw_readers_of_two_connections_read_side_by_side()
    {
        await SeedAsync(4);
        await using var first = Scope.OpenConnection();
        await using var second = Scope.OpenConnection();
        for (var round = 0; round < Rounds; round++)
        {
            await using var one = first.CreateCommand();
            one.CommandText = $"SELECT name FROM items WHERE name LIKE '{Tag}%' ORDER BY name";
            await using var other = second.CreateCommand();
            other.CommandText = $"SELECT quantity FROM items WHERE name LIKE '{Tag}%' ORDER BY name";
            await using var names = await one.ExecuteReaderAsync();
            await using var quantities = await other.ExecuteReaderAsync();
            var pairs = new List<string>();
            while (await names.ReadAsync() && await quantities.ReadAsync())
                pairs.Add($"{names.GetString(0)}={quantities.GetInt32(0)}");
            Assert.That(pairs, Is.EqualTo(Enumerable.Range(0, 4).Select(i => $"{Name($"{i:D2}")}={i}")), $"round {round}");
        }
    }

    /// <summary>A row of every kind of value an application maps, as linq2db reads it.</summary>
    public sealed record TypedRow(int Number, long Big, decimal Amount, bool Flag, Guid Key, DateTime Moment, DateTimeOffset Offset, byte[] Bytes, string Text, int? Missing, string? NoText);

    static string TypedRowsSql => TestRun.Database.Provider.Name == "postgres"
        ? """
          SELECT n AS "Number", n * 10000000000 AS "Big", n / 3.0::numeric(20,6) AS "Amount", n % 2 = 0 AS "Flag",
                 ('00000000-0000-0000-0000-00000000000' || n)::uuid AS "Key", timestamp '2026-01-02 03:04:05.123456' + n * interval '1 day' AS "Moment",
                 timestamptz '2026-01-02 03:04:05.5+02' + n * interval '1 hour' AS "Offset", decode(repeat('ab', n + 1), 'hex') AS "Bytes",
                 repeat('é', n) AS "Text", CASE WHEN n % 2 = 0 THEN n END AS "Missing", CASE WHEN n % 2 = 1 THEN 'odd' END AS "NoText"
          FROM generate_series(1, 9) AS n ORDER BY n
          """
        : """
          SELECT n AS Number, CAST(n AS bigint) * 10000000000 AS Big, CAST(n / 3.0 AS decimal(20,6)) AS Amount, CAST(CASE WHEN n % 2 = 0 THEN 1 ELSE 0 END AS bit) AS Flag,
                 CAST('00000000-0000-0000-0000-00000000000' + CAST(n AS varchar(1)) AS uniqueidentifier) AS [Key],
                 DATEADD(day, n, CAST('2026-01-02T03:04:05.123456' AS datetime2)) AS Moment,
                 DATEADD(hour, n, CAST('2026-01-02T03:04:05.5+02:00' AS datetimeoffset)) AS Offset,
                 CAST(REPLICATE(CAST(0xAB AS varbinary(max)), n + 1) AS varbinary(max)) AS Bytes,
                 REPLICATE(N'é', n) AS Text, CASE WHEN n % 2 = 0 THEN n END AS Missing, CASE WHEN n % 2 = 1 THEN N'odd' END AS NoText
          FROM (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS numbers(n) ORDER BY n
          """;

    static string Show(TypedRow row) =>
        $"{row.Number} {row.Big} {row.Amount} {row.Flag} {row.Key} {row.Moment:O} {row.Offset:O} {Convert.ToHexString(row.Bytes)} {row.Text} {row.Missing} {row.NoText ?? "null"}";

    [Test]
    public async Task A_result_read_into_memory_gives_every_value_as_the_driver_gives_it()
    {
        await using var reading = NewShop();
        await using var querying = NewShop();
        var alone = (await reading.QueryToArrayAsync<TypedRow>(TypedRowsSql)).Select(Show).ToList();
        Assert.That(alone, Has.Count.EqualTo(9));

        // After each number of rows read, another context needs the session: the rest comes from memory.
        for (var before = 0; before <= 9; before++)
        {
            var shown = new List<string>();
            var row = 0;
            await foreach (var item in reading.QueryToAsyncEnumerable<TypedRow>(TypedRowsSql))
            {
                if (row++ == before)
                    Assert.That(await querying.Items.CountAsync(i => i.Name.StartsWith(Tag)), Is.Zero);
                shown.Add(Show(item));
            }

            Assert.That(shown, Is.EqualTo(alone), $"another context queried after {before} rows");
        }

        Assert.That(Scope.Trace, Does.Contain("read into memory"));
    }
}

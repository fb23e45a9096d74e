using System.Diagnostics;
using System.Security.Cryptography;
using Linq2DbTestKit.PostgreSql;
using LinqToDB;
using LinqToDB.Async;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>
/// A class of 20 tests whose seed is expensive (a password hash, as an application's user seed has, and 50 rows):
/// seeded once for the class and shared through a savepoint per test (<c>SeededDatabaseTest</c>'s path), against
/// seeded again in every test's scope.
/// </summary>
public static class ClassSeeds
{
    public const int TestsPerClass = 20;

    public sealed record Measurement(double SeedMilliseconds, double PerTestSeededMilliseconds, double PerTestSharedMilliseconds, int Classes);

    public static async Task<Measurement> MeasureAsync(string serverConnectionString, int classes)
    {
        await using var database = await TestDatabase.CreateAsync(PostgreSqlDatabaseProvider.Instance, new TestDatabaseOptions
        {
            ConnectionString = serverConnectionString,
            ExistingDatabase = BenchSchema.Database(20),
            AllowExistingDatabase = true,
        });

        var seeded = new List<double>();
        var shared = new List<double>();
        var seeds = new List<double>();
        for (var round = -1; round < classes; round++)
        {
            var watch = Stopwatch.StartNew();
            for (var test = 0; test < TestsPerClass; test++)
            {
                await using var scope = await database.BeginScopeAsync();
                await using var db = new BenchDb(scope.Options);
                var seedWatch = Stopwatch.StartNew();
                await SeedAsync(db);
                if (round >= 0)
                    seeds.Add(seedWatch.Elapsed.TotalMilliseconds);
                await db.WorkAsync();
            }

            if (round >= 0)
                seeded.Add(watch.Elapsed.TotalMilliseconds / TestsPerClass);

            watch.Restart();
            await using (var classScope = await database.BeginScopeAsync())
            {
                await using (var db = new BenchDb(classScope.Options))
                    await SeedAsync(db);
                classScope.IdleBetweenNestedScopes();
                for (var test = 0; test < TestsPerClass; test++)
                {
                    await using var scope = await classScope.BeginNested(async: true, CancellationToken.None);
                    await using var db = new BenchDb(scope.Options);
                    await db.WorkAsync();
                }
            }

            if (round >= 0)
                shared.Add(watch.Elapsed.TotalMilliseconds / TestsPerClass);
        }

        return new Measurement(Harness.Quantile(seeds, 0.5), Harness.Quantile(seeded, 0.5), Harness.Quantile(shared, 0.5), classes);
    }

    /// <summary>A user with a password hash (PBKDF2, 100,000 rounds) and the 50 orders the class's tests read.</summary>
    static async Task SeedAsync(BenchDb db)
    {
        var hash = Rfc2898DeriveBytes.Pbkdf2("correct horse battery staple", "seed-salt"u8.ToArray(), 100_000, HashAlgorithmName.SHA256, 32);
        var customer = await db.InsertWithInt64IdentityAsync(new Customer { Name = Convert.ToBase64String(hash) });
        for (var order = 0; order < 50; order++)
            await db.InsertAsync(new Order { CustomerId = customer, Total = order });
    }
}

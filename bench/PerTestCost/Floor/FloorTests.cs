using System.Net.Http.Json;
using LinqToDB;
using LinqToDB.Data;
using LinqToDB.DataProvider;
using LinqToDB.DataProvider.PostgreSQL;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace PerTestCost.Floor;

/// <summary>The run's database, made by hand: created on BENCH_SERVER before the tests, dropped after them.</summary>
[SetUpFixture]
public sealed class FloorRun
{
    static string? _database;

    public static string ConnectionString { get; private set; } = "";

    public static IDataProvider Provider { get; } = PostgreSQLTools.GetDataProvider(PostgreSQLVersion.v15);

    static string Server => Environment.GetEnvironmentVariable("BENCH_SERVER") ?? throw new InvalidOperationException("Set BENCH_SERVER: bench/run --per-test does.");

    [OneTimeSetUp]
    public static async Task CreateDatabase()
    {
        _database = $"bench_floor_{Guid.NewGuid():N}"[..24];
        await using (var admin = new NpgsqlConnection(Server))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {_database}", admin);
            await create.ExecuteNonQueryAsync();
        }

        ConnectionString = new NpgsqlConnectionStringBuilder(Server) { Database = _database }.ConnectionString;
        await using var db = new DataConnection(new DataOptions().UseConnectionString(Provider, ConnectionString));
        foreach (var statement in Work.Schema())
            await db.ExecuteAsync(statement);
    }

    [OneTimeTearDown]
    public static async Task DropDatabase()
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(Server);
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }
}

/// <summary>The floor: a pooled connection, BEGIN, the application's context on it with UseTransaction, ROLLBACK.</summary>
public sealed class HandWritten
{
    NpgsqlConnection _connection = null!;
    NpgsqlTransaction _transaction = null!;

    [SetUp]
    public async Task Begin()
    {
        _connection = new NpgsqlConnection(FloorRun.ConnectionString);
        await _connection.OpenAsync();
        _transaction = await _connection.BeginTransactionAsync();
    }

    [TearDown]
    public async Task RollBack()
    {
        await _transaction.RollbackAsync();
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }

    [TestCaseSource(typeof(Work), nameof(Work.Cases))]
    public async Task Insert_and_count(int test)
    {
        await using var db = new AppDb(new DataOptions().UseTransaction(FloorRun.Provider, _transaction));
        Assert.That(await Work.InsertAndCountAsync(db, test), Is.EqualTo(1));
    }
}

/// <summary>
/// The ASP.NET Core floor: one request per test (reading the row the test wrote), served by the application's DI with its context replaced by one on the
/// test's transaction, which the request names in a header, as a hand-written override does it.
/// </summary>
public sealed class HandWrittenAspNet
{
    static readonly Dictionary<string, NpgsqlTransaction> Transactions = [];
    static readonly Lazy<WebApplicationFactory<Program>> Factory = new(() => new WebApplicationFactory<Program>()
        .WithWebHostBuilder(builder => builder
            .UseSetting("ConnectionStrings:App", FloorRun.ConnectionString)
            .ConfigureTestServices(services =>
            {
                services.AddHttpContextAccessor();
                services.AddScoped(provider =>
                {
                    var test = provider.GetRequiredService<IHttpContextAccessor>().HttpContext!.Request.Headers["X-Test"].ToString();
                    NpgsqlTransaction transaction;
                    lock (Transactions)
                        transaction = Transactions[test];
                    return new AppDb(new DataOptions().UseTransaction(FloorRun.Provider, transaction));
                });
            })));

    readonly string _test = Guid.NewGuid().ToString("N");
    NpgsqlConnection _connection = null!;
    NpgsqlTransaction _transaction = null!;
    HttpClient _client = null!;

    [SetUp]
    public async Task Begin()
    {
        _connection = new NpgsqlConnection(FloorRun.ConnectionString);
        await _connection.OpenAsync();
        _transaction = await _connection.BeginTransactionAsync();
        lock (Transactions)
            Transactions[_test] = _transaction;
        _client = Factory.Value.CreateClient();
        _client.DefaultRequestHeaders.Add("X-Test", _test);
    }

    [TearDown]
    public async Task RollBack()
    {
        _client.Dispose();
        lock (Transactions)
            Transactions.Remove(_test);
        await _transaction.RollbackAsync();
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }

    [OneTimeTearDown]
    public static async Task StopTheApi()
    {
        if (Factory.IsValueCreated)
            await Factory.Value.DisposeAsync();
    }

    [TestCaseSource(typeof(Work), nameof(Work.Cases))]
    public async Task One_request(int test)
    {
        await using (var db = new AppDb(new DataOptions().UseTransaction(FloorRun.Provider, _transaction)))
            await db.GetTable<Counter>().InsertAsync(() => new Counter { Name = $"test-{test}" });

        var names = await _client.GetFromJsonAsync<string[]>("/counters");
        Assert.That(names, Is.EqualTo(new[] { $"test-{test}" }));
    }
}

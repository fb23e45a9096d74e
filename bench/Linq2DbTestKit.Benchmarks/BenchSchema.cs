using System.Text;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using LinqToDB.Mapping;
using Npgsql;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>The application's context: three tables the unit of work writes, among the schema's others.</summary>
public sealed class BenchDb(DataOptions options) : DataConnection(options)
{
    public ITable<Customer> Customers => this.GetTable<Customer>();

    public ITable<Order> Orders => this.GetTable<Order>();

    public ITable<OrderLine> Lines => this.GetTable<OrderLine>();

    /// <summary>The fixed unit of work of every strategy: a customer, two orders of two lines each, and one query.</summary>
    public async Task<int> WorkAsync()
    {
        var customer = await this.InsertWithInt64IdentityAsync(new Customer { Name = "ada" });
        for (var order = 0; order < 2; order++)
        {
            var orderId = await this.InsertWithInt64IdentityAsync(new Order { CustomerId = customer, Total = 10 * (order + 1) });
            for (var line = 0; line < 2; line++)
                await this.InsertAsync(new OrderLine { OrderId = orderId, Product = "tea", Quantity = line + 1 });
        }

        return await Lines.CountAsync(l => l.Order!.CustomerId == customer);
    }
}

[Table("customers")]
public sealed class Customer
{
    [Column("id"), PrimaryKey, Identity] public long Id { get; set; }
    [Column("name"), NotNull] public required string Name { get; set; }
}

[Table("orders")]
public sealed class Order
{
    [Column("id"), PrimaryKey, Identity] public long Id { get; set; }
    [Column("customer_id")] public long CustomerId { get; set; }
    [Column("total")] public int Total { get; set; }
}

[Table("order_lines")]
public sealed class OrderLine
{
    [Column("id"), PrimaryKey, Identity] public long Id { get; set; }
    [Column("order_id")] public long OrderId { get; set; }
    [Column("product"), NotNull] public required string Product { get; set; }
    [Column("quantity")] public int Quantity { get; set; }

    [Association(ThisKey = nameof(OrderId), OtherKey = nameof(Benchmarks.Order.Id))]
    public Order? Order { get; set; }
}

/// <summary>The benchmark databases: one per schema size, and a template of each for the database-per-test strategy.</summary>
public static class BenchSchema
{
    public const int WorkTables = 3;

    public static string Database(int tables) => $"testkit_bench_{tables}";

    public static string Template(int tables) => $"testkit_bench_{tables}_template";

    /// <summary>The database of the real-commit strategy: its change tracking triggers must not weigh on the others.</summary>
    public static string Commits(int tables) => $"testkit_bench_{tables}_commits";

    /// <summary>The schema's tables, the three of the work first; the others reference each other and the work's, as a real schema's do.</summary>
    public static IReadOnlyList<string> TableNames(int tables) =>
        ["customers", "orders", "order_lines", .. Enumerable.Range(1, tables - WorkTables).Select(i => $"filler_{i:D3}")];

    public static string Ddl(int tables)
    {
        var ddl = new StringBuilder("""
            CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL);
            CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), total int NOT NULL);
            CREATE TABLE order_lines (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id), product text NOT NULL, quantity int NOT NULL);

            """);
        for (var i = 1; i <= tables - WorkTables; i++)
        {
            var referenced = i == 1 ? "customers" : $"filler_{i - 1:D3}";
            ddl.AppendLine(System.Globalization.CultureInfo.InvariantCulture,
                $"CREATE TABLE filler_{i:D3} (id bigserial PRIMARY KEY, parent_id bigint REFERENCES {referenced} (id), note text);");
        }

        return ddl.ToString();
    }

    /// <summary>Creates the database and its template for <paramref name="tables"/> tables, from scratch.</summary>
    public static async Task CreateAsync(string serverConnectionString, int tables)
    {
        await using var admin = new NpgsqlConnection(serverConnectionString);
        await admin.OpenAsync();
        foreach (var name in new[] { Database(tables), Template(tables), Commits(tables) })
        {
            await Run(admin, $"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            await Run(admin, $"CREATE DATABASE {name}");
            await using var database = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(serverConnectionString) { Database = name }.ConnectionString);
            await database.OpenAsync();
            await Run(database, Ddl(tables));
        }

        NpgsqlConnection.ClearAllPools();
    }

    /// <summary>
    /// Writes out what the previous strategy left to write (the database-per-test and TRUNCATE strategies leave a lot), so
    /// that it does not land in the next strategy's measurement.
    /// </summary>
    public static async Task SettleAsync(string serverConnectionString)
    {
        await using (var admin = new NpgsqlConnection(serverConnectionString))
        {
            await admin.OpenAsync();
            await Run(admin, "CHECKPOINT");
        }

        using var sync = System.Diagnostics.Process.Start("sync");
        await sync.WaitForExitAsync();
    }

    public static async Task DropAsync(string serverConnectionString, int tables)
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(serverConnectionString);
        await admin.OpenAsync();
        await Run(admin, $"DROP DATABASE IF EXISTS {Database(tables)} WITH (FORCE)");
        await Run(admin, $"DROP DATABASE IF EXISTS {Template(tables)} WITH (FORCE)");
        await Run(admin, $"DROP DATABASE IF EXISTS {Commits(tables)} WITH (FORCE)");
    }

    public static async Task Run(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}

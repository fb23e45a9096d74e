using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using LinqToDB.Mapping;

var builder = WebApplication.CreateBuilder(args);
var connectionString = builder.Configuration.GetConnectionString("App")
    ?? throw new InvalidOperationException("Set ConnectionStrings:App.");
var options = builder.Configuration["Database:Provider"] == "sqlserver"
    ? new DataOptions().UseSqlServer(connectionString)
    : new DataOptions().UsePostgreSQL(connectionString);
builder.Services.AddScoped(_ => new AppDb(options));

var app = builder.Build();

app.MapPost("/counters/{name}", async (string name, AppDb db) =>
{
    await using var transaction = await db.BeginTransactionAsync();
    var id = await db.InsertWithInt32IdentityAsync(new Counter { Name = name });
    await transaction.CommitAsync();
    return Results.Ok(id);
});

app.MapGet("/counters", async (AppDb db) => await db.Counters.OrderBy(c => c.Id).Select(c => c.Name).ToListAsync());

app.Run();

public sealed class AppDb(DataOptions options) : DataConnection(options)
{
    public ITable<Counter> Counters => this.GetTable<Counter>();
}

[Table("counters")]
public sealed class Counter
{
    [Column("id"), PrimaryKey, Identity] public int Id { get; set; }
    [Column("name"), NotNull] public string Name { get; set; } = "";
}

public partial class Program;

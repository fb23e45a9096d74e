using ProfilesApi.Api;
using ProfilesApi.Data;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddProblemDetails();
// A body that cannot be read is the client's mistake: answer 400 in every environment (Development would throw, and answer 500).
builder.Services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = false);
builder.Services.AddProfilesDatabase(builder.Configuration);

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();

if (app.Configuration.GetValue("Database:MigrateOnStartup", defaultValue: true))
    ProfilesDatabase.CreateAndMigrate(app.Configuration);

app.MapProfiles();
app.Run();

/// <summary>The API's entry point; public, so that tests can start it with WebApplicationFactory.</summary>
public partial class Program;

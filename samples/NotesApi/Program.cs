using NotesApi.Api;
using NotesApi.Data;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddProblemDetails();
builder.Services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = false);
builder.Services.AddSingleton<NoteRepository>();
builder.Services.AddSingleton<TagRepository>();

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();

// The application's own start-up: register linq2db's configuration, then migrate and seed the database.
NotesDatabase.Configure(app.Configuration);
NotesDatabase.MigrateAndSeed(app.Configuration);

app.MapNotes();
app.Run();

/// <summary>The API's entry point; public, so that tests can start it with WebApplicationFactory.</summary>
public partial class Program;

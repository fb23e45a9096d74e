using System.Data.Common;
using LinqToDB;
using LinqToDB.Async;
using ProfilesApi.Data;

namespace ProfilesApi.Api;

public sealed record NewProfile(string? Name);

public sealed record NewProfiles(string?[]? Names);

public sealed record BatchResult(Profile[] Created, Rejection[] Rejected);

public sealed record Rejection(string? Name, string Reason);

public static class ProfileEndpoints
{
    public const int MaxBatchSize = 100;

    public static IEndpointRouteBuilder MapProfiles(this IEndpointRouteBuilder app)
    {
        var profiles = app.MapGroup("/api/profiles");
        profiles.MapPost("/", Create);
        profiles.MapGet("/", List);
        profiles.MapGet("/{id:long}", Get);
        profiles.MapPost("/batch", CreateBatch);
        return app;
    }

    /// <summary>Creates a profile in a transaction of its own, as application code does; a duplicate name is a conflict.</summary>
    static async Task<IResult> Create(NewProfile request, AppDataConnection db, CancellationToken cancellationToken)
    {
        if (Invalid(request.Name) is { } error)
            return Results.ValidationProblem(new Dictionary<string, string[]> { ["name"] = [error] });

        var profile = new Profile { Name = request.Name!.Trim() };
        await using var transaction = await db.BeginTransactionAsync(cancellationToken);
        try
        {
            profile.Id = await db.InsertWithInt64IdentityAsync(profile, token: cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return Results.Created($"/api/profiles/{profile.Id}", profile);
        }
        catch (DbException exception) when (ProfilesDatabase.IsUniqueViolation(exception))
        {
            return Conflict(profile.Name);
        }
    }

    static async Task<Profile[]> List(AppDataConnection db, CancellationToken cancellationToken) =>
        await db.Profiles.OrderBy(p => p.Id).ToArrayAsync(cancellationToken);

    static async Task<IResult> Get(long id, AppDataConnection db, CancellationToken cancellationToken) =>
        await db.Profiles.FirstOrDefaultAsync(p => p.Id == id, cancellationToken) is { } profile
            ? Results.Ok(profile)
            : Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Profile not found", detail: $"No profile has id {id}.");

    /// <summary>
    /// Creates several profiles in one transaction; each item gets a savepoint of its own inside it, so an item that
    /// fails rolls back only itself, and the rest commit together.
    /// </summary>
    static async Task<IResult> CreateBatch(NewProfiles request, AppDataConnection db, CancellationToken cancellationToken)
    {
        if (request.Names is not { Length: > 0 and <= MaxBatchSize } names)
            return Results.ValidationProblem(new Dictionary<string, string[]> { ["names"] = [$"Give between 1 and {MaxBatchSize} names."] });

        var created = new List<Profile>();
        var rejected = new List<Rejection>();
        await using var transaction = await db.BeginTransactionAsync(cancellationToken);
        for (var i = 0; i < names.Length; i++)
        {
            if (Invalid(names[i]) is { } error)
            {
                rejected.Add(new Rejection(names[i], error));
                continue;
            }

            var savepoint = $"item_{i}";
            var profile = new Profile { Name = names[i]!.Trim() };
            await db.Transaction!.SaveAsync(savepoint, cancellationToken);
            try
            {
                profile.Id = await db.InsertWithInt64IdentityAsync(profile, token: cancellationToken);
                await db.Transaction.ReleaseAsync(savepoint, cancellationToken);
                created.Add(profile);
            }
            catch (DbException exception) when (ProfilesDatabase.IsUniqueViolation(exception))
            {
                await db.Transaction.RollbackAsync(savepoint, cancellationToken);
                rejected.Add(new Rejection(profile.Name, "A profile with this name exists."));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return Results.Ok(new BatchResult([.. created], [.. rejected]));
    }

    static string? Invalid(string? name) => name?.Trim() switch
    {
        null or "" => "Give the profile a name.",
        { Length: > Profile.MaxNameLength } => $"A name has at most {Profile.MaxNameLength} characters.",
        _ => null,
    };

    static IResult Conflict(string name) => Results.Problem(
        statusCode: StatusCodes.Status409Conflict, title: "Profile exists", detail: $"A profile named '{name}' exists already.");
}
